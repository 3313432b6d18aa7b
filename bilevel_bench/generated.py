"""Generated data that are bit-identical on every CPU, BLAS and thread count.

``torch.randn`` (Box-Muller through the platform's ``log``/``sin``/``cos``) and LAPACK/BLAS
(QR, SVD, matrix products: their summation order follows the CPU's vector width, the BLAS
vendor's code path and the thread count) differ in the last bits between machines; a generated
instance built with them is not the same instance everywhere (measured: quadratic-small's
fingerprint changed with ``MKL_CBWR=COMPATIBLE``, the ill-conditioned one with two threads).
Generated instances are therefore built from two kinds of pieces only:

* **exact draws**: :func:`normal` uses integers from the generator's Mersenne twister
  (``torch.randint``, identical everywhere) and only operations that are exact in float64: the
  Irwin-Hall approximation of N(0, 1), the sum of 12 uniforms on the grid 2^-26 minus 6 (mean 0,
  variance 1, support [-6, 6]; the integer sum stays below 2^30, hence exact). ``torch.rand``
  in float64 is exact too (53 random bits times 2^-53);
* **snapped results**: anything computed with BLAS/LAPACK or transcendental functions (an
  orthogonal eigenbasis, a matrix with a given spectral norm) is rounded to the fixed grid
  2^-:data:`GRID_BITS` by :class:`FixedGrid`, which also records how close any entry came to a
  rounding boundary (its ``margin``). Two machines whose float64 results differ by less than the
  margin round to the same grid point; the tests pin every registered instance's margin far
  above the differences seen between CPU code paths (about 1e-15 here).

Multiplying an exact draw by a scalar, adding two tensors and ``math.sqrt`` are correctly
rounded in IEEE arithmetic, so they are portable too; sums over an axis are not (their order is
the implementation's) and go through :class:`FixedGrid`.
"""

from __future__ import annotations

import math

import torch

#: uniforms of :func:`normal` are integer multiples of 2^-UNIFORM_BITS
UNIFORM_BITS = 26
#: snapped values are integer multiples of 2^-GRID_BITS
GRID_BITS = 20


def normal(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Approximately N(0, 1), exactly reproducible: the sum of 12 uniforms on the grid
    2^-26 minus 6 (Irwin-Hall: mean 0, variance 1, support [-6, 6])."""
    draws = torch.randint(0, 2**UNIFORM_BITS, (12, *shape), generator=generator,
                          dtype=torch.int64)
    return draws.sum(0).to(torch.float64) * 2.0**-UNIFORM_BITS - 6.0


class FixedGrid:
    """Rounds float64 tensors to the grid 2^-bits (round half to even) and keeps ``margin``:
    the smallest distance, over every rounded entry so far, between the unrounded value and a
    rounding boundary (half a grid step from a grid point). A machine whose result differs by
    less than ``margin`` rounds every entry to the same grid point."""

    def __init__(self, bits: int = GRID_BITS) -> None:
        self.bits = bits
        self.margin = math.inf

    def __call__(self, values: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``values`` rounded to the grid, as float64 (``inplace``: reuse ``values``' memory,
        which must then be float64; two d x d buffers at most, for the O(d^2) constructions)."""
        scaled = values.mul_(2.0**self.bits) if inplace else values.to(torch.float64) * \
            2.0**self.bits
        rounded = torch.round(scaled)
        if scaled.numel():
            distance = 0.5 - float(scaled.sub_(rounded).abs_().max())
            self.margin = min(self.margin, distance * 2.0**-self.bits)
        return rounded.mul_(2.0**-self.bits)

    def symmetric(self, matrix: torch.Tensor) -> torch.Tensor:
        """A symmetric matrix on the grid: (M + M^T) / 2 (exactly symmetric), then rounded."""
        return self(0.5 * (matrix + matrix.T))
