"""The gradient all-reduce of bench/distributed.toml by itself: two Gloo ranks on this
machine, one thread each, all-reduce a flat gradient of --numel values in --buckets
asynchronous pieces (as host run's 25 MiB buckets do), in float32 and in bfloat16, and
the cost of casting float32 to bfloat16 and back (what a bf16-compressed all-reduce
adds, as DDP's bf16_compress_hook does). Tells the transfer's own cost apart from the
waiting for the other rank that bench_distributed.sh's "in flight" column also counts.

    python3 -m torch.distributed.run --standalone --nproc-per-node 2 \
        bench/python/gloo_allreduce.py [--numel 12734976] [--buckets 2] [--rounds 7]

Prints rank 0's median milliseconds per all-reduce of the whole gradient.
"""
import argparse
import statistics
import time

import torch
import torch.distributed as dist


def all_reduce_ms(flat, buckets, rounds):
    pieces = flat.chunk(buckets)
    times = []
    for _ in range(rounds):
        dist.barrier()  # both ranks start together: no waiting for a straggler is timed
        start = time.perf_counter()
        for work in [dist.all_reduce(p, async_op=True) for p in pieces]:
            work.wait()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--numel", type=int, default=12734976)  # distributed.toml's parameters
    parser.add_argument("--buckets", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    grad = torch.randn(args.numel)
    fp32 = all_reduce_ms(grad.clone(), args.buckets, args.rounds)
    bf16 = all_reduce_ms(grad.to(torch.bfloat16), args.buckets, args.rounds)
    casts = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        grad.copy_(grad.to(torch.bfloat16))
        casts.append(1000 * (time.perf_counter() - start))
    if dist.get_rank() == 0:
        mb = 4 * args.numel / 1e6
        print(f"{args.numel} values ({mb:.0f} MB float32) in {args.buckets} buckets, 2 ranks, median of {args.rounds}:")
        print(f"  all-reduce float32   {fp32:6.1f} ms")
        print(f"  all-reduce bfloat16  {bf16:6.1f} ms")
        print(f"  cast to bfloat16 and back {statistics.median(casts):6.1f} ms (bfloat16 total "
              f"{bf16 + statistics.median(casts):.1f} ms against {fp32:.1f})")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
