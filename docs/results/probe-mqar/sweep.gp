# MQAR accuracy against width per subject, one panel per (T, pairs), from sweep.tsv (the probe
# folders' cells, docs/results.md#probes). Run here: gnuplot sweep.gp
set terminal pngcairo size 1000,420
set output 'sweep.png'
set datafile separator "\t"
set multiplot layout 1,2 title "MQAR at the CPU scale (1,000 steps of 4,096 tokens, lr 3e-3, one seed)"
set logscale x 2
set xtics (32, 64, 128)
set xrange [28:146]
set yrange [0:100]
set xlabel "width (d\\_model)"
set ylabel "accuracy (%)"
subjects = "probe_attention_zoology attention mla hyena retnet mamba titans shortconv prefix_mean"
colors = "#009e73 #56b4e9 #e69f00 #c8b400 #0072b2 #d55e00 #000000 #9400d3 #999999"
titles = "attention(zoology) attention(RoPE) mla hyena retnet mamba-2 titans shortconv(3rd-party) prefix\\_mean"
do for [L in "64 128"] {
  set title sprintf("T %s, %d key-value pairs", L, L == "64" ? 4 : 8)
  plateau = L == "64" ? 25 : 12.5
  if (L eq "64") { unset key } else { set key top left font ",9" }
  plot plateau with lines dt 2 lc "gray" title "1 / pairs", \
       for [i=1:words(subjects)] 'sweep.tsv' using ((strcol(1) eq word(subjects, i) && strcol(2) eq L) ? $4 : 1/0):5 \
       with linespoints lw 2 lc rgb word(colors, i) title word(titles, i)
}
unset multiplot
