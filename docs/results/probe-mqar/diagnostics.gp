set terminal pngcairo size 800,450
set output 'diagnostics.png'
set title "MQAR T 64, 4 pairs, width 64: only zoology's model leaves the 25% plateau by step 800"
set xlabel "step (batch 64, lr 3e-3)"
set ylabel "validation accuracy (%)"
set yrange [0:100]
set key bottom right
set datafile separator "\t"
plot 'diagnostics.tsv' using (strcol(1) eq "b1_zoo" ? $2 : 1/0):3 with linespoints title "zoology's: no FFN, learned positions, no RoPE", \
     '' using (strcol(1) eq "b1_probe" ? $2 : 1/0):3 with linespoints title "probe's before: RoPE attention + SwiGLU", \
     '' using (strcol(1) eq "c2_rope_noffn" ? $2 : 1/0):3 with linespoints title "no FFN, RoPE attention"
