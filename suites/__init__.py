"""asv benchmarks over the bilevel_bench registry (``benchmark_dir`` of ``asv.conf.json``).

Threads are pinned to one here, before any benchmark module does work: on a small machine,
BLAS/OpenMP oversubscription makes timings meaningless.
"""

from bilevel_bench.provenance import pin_threads

pin_threads(1)
