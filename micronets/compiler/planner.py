"""Activation-arena memory planner.

Contract
========
The compiler executes ops in order ``0 .. T-1``.  Every intermediate tensor is a
:class:`Buffer` that lives in ONE static byte arena.  ``Buffer.first`` is the
index of the op that writes it and ``Buffer.last`` the index of the last op that
reads it; the buffer is *live* during ``[first, last]`` (inclusive).

:func:`plan` assigns each buffer a byte offset such that

* every offset is a non-negative multiple of ``alignment``;
* two buffers whose live intervals intersect (``a.first <= b.last`` and
  ``b.first <= a.last``) are byte-disjoint, EXCEPT
* when an :class:`Overlap` record ``(src, dst, min_gap)`` exists: the op at
  time ``src.last == dst.first`` reads ``src`` and writes ``dst``
  progressively, so the two may share bytes provided
  ``offset(src) - offset(dst) >= min_gap``.  (Disjoint placement is always
  allowed as well.)  Typical gaps: elementwise op ``0``; expanding 1x1 conv
  ``out - in`` (the input must end where the output ends, or later);
  shrinking 1x1 conv ``0`` or negative; depthwise conv keeping H, W, C one row
  of the output.
* Kernels that can ALSO walk their output backwards (last pixel first) give the
  record a second, alternative window ``max_gap``: sharing is then also legal
  when ``offset(src) - offset(dst) <= max_gap``.  In short, with
  ``d = offset(src) - offset(dst)`` two buffers of a record may share bytes iff
  ``d >= min_gap`` (forward walk) or ``d <= max_gap`` (reverse walk, only when
  ``max_gap is not None``); otherwise they must be disjoint.  Typical reverse
  gaps: expanding 1x1 conv ``0`` (output starts at or after the input start);
  shrinking 1x1 conv ``in - out`` (input end-aligned with the output, or the
  output later).  :meth:`Plan.direction` tells the caller which walk a placed
  pair needs (``"forward"`` is preferred when both windows hold).

At most one record per pair of buffers (repeating an identical record is
harmless; records with different gaps, or in both directions, are rejected).

The result is deterministic: the same input (same order) gives the same plan.
``plan`` always returns a valid plan; :meth:`Plan.check` re-verifies every rule
(and the recorded ``Plan.directions``) and is cheap enough to be used as a
self-check by the compiler.

Bounds
======
``naive_bound``
    ``max_t sum(size of buffers live at t)`` -- what a perfect planner needs
    without any in-place work.

``lower_bound``
    A true lower bound for ANY valid placement.  At time ``t`` let ``L_t`` be
    the live set and ``E_t`` the overlap records active at ``t`` (a record is
    active exactly at ``t = src.last = dst.first``, the only instant where both
    buffers are live, so ``E_t`` are the only pairs of ``L_t`` allowed to share
    bytes).  The arena is at least the measure of the union of ``L_t``.

    *Pair span.*  Put ``src`` (size ``i``) at ``[0, i)`` and ``dst`` (size
    ``o``) at ``[-d, -d + o)`` with ``d = offset(src) - offset(dst)``; the
    extent is ``max(i, o - d) - min(0, -d)``.  Legal ``d`` are ``d >= g``
    (``g`` = ``min_gap`` rounded up to the alignment, since both offsets are
    aligned), ``d <= G`` (``G`` = ``max_gap`` rounded DOWN to the alignment,
    only with a reverse window) or any disjoint placement (span ``>= i + o``).

    Forward window ``d >= g``: for ``d >= 0`` the span is
    ``max(i, o - d) + d = max(i + d, o)``, increasing in ``d``, so the best is
    ``d = max(g, 0)``.  For ``d < 0`` (only legal when ``g < 0``) the span is
    ``max(i, o + |d|) >= max(i, o)``, which ``d = 0`` already achieves.  So the
    best forward span is ``max(i + max(g, 0), o)``.

    Reverse window ``d <= G``: for ``d <= 0`` the span is ``max(i, o + |d|)``,
    increasing in ``|d|``, so the best is ``d = min(G, 0)``.  For ``d > 0``
    (only legal when ``G > 0``) the span is ``max(i + d, o) >= max(i, o)``,
    which ``d = 0`` already achieves.  So the best reverse span is
    ``max(i, o + max(-G, 0))``.  Hence::

        span(i, o, g)    = min(i + o, max(i + max(g, 0), o))
        span(i, o, g, G) = min(i + o, max(i + max(g, 0), o), max(i, o + max(-G, 0)))

    *Combining.*  Choose a family of disjoint *groups* of live buffers, each a
    single buffer or one active pair, such that no active record joins two
    different groups.  Different groups are then forced to be byte-disjoint,
    so the union is at least ``sum(group measure)`` where a single buffer
    counts its size and a pair its ``span``.  Buffers not touched by any record
    at ``t`` always form singleton groups.  Over the (small) subgraph of
    buffers touched by ``E_t`` the best family is found by exhaustive search;
    if that subgraph is large (> 14 buffers) each connected component
    contributes only ``max(max pair span, max size)`` which is still valid.
    Note that simply subtracting the largest single saving is NOT valid in
    general (a concat writing ``c`` over both inputs ``a`` and ``b`` saves
    both), which is why sharing buffers are handled this way.

    ``lower_bound = max_t`` of that quantity (and at least the largest buffer).

Algorithm
=========
1. Greedy fallbacks: "lowest feasible offset" first-fit in four orders
   (TFLM-style largest first, execution order, size x lifetime, lifetime);
   the best is an upper bound ``G``.
2. Targeted search: for a target arena size ``M`` buffers are placed in
   execution order (by ``first``), each trying a small set of candidate
   offsets (0, ``M - size``, ends / starts of conflicting placed buffers, the
   tightest in-place positions allowed by an overlap record in either window:
   ``offset(src) - min_gap`` / ``offset(src) - max_gap`` for a dst,
   ``offset(dst) + min_gap`` / ``offset(dst) + max_gap`` for a src) with depth-first
   backtracking, a node budget and memoisation of failed states (the state is
   the offsets of already-placed buffers still live when the next buffer is
   written).  ``M = lower_bound`` is tried first, then a binary search between
   ``lower_bound`` and ``G``.
3. Last resort (never expected): all buffers disjoint.

Limitations: the search is heuristic (bounded budget, restricted candidate
offsets), so optimality is not guaranteed on large graphs with many parallel
live buffers; the result is always valid and never worse than the greedy.
"""
from __future__ import annotations

import itertools
import numbers
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["Buffer", "Overlap", "Plan", "plan", "pair_span"]


@dataclass(frozen=True)
class Buffer:
    """One activation tensor: ``size`` bytes, live during ``[first, last]``."""

    name: str
    size: int  # bytes, > 0
    first: int  # index of the op that writes it
    last: int  # index of the last op that reads it (>= first)


@dataclass(frozen=True)
class Overlap:
    """The op at time ``src.last == dst.first`` reads ``src`` and writes ``dst``
    progressively, so ``dst`` may share bytes with ``src`` provided
    ``offset(src) - offset(dst) >= min_gap`` (``min_gap`` may be negative or
    zero).  If the kernel can also walk backwards, ``max_gap`` opens a second
    window: sharing is also legal when ``offset(src) - offset(dst) <= max_gap``.
    Without this record, or if neither gap condition holds, the two must be
    disjoint."""

    src: str
    dst: str
    min_gap: int
    max_gap: Optional[int] = None  # reverse walk window; None = forward only


@dataclass(frozen=True)
class Plan:
    offsets: Dict[str, int]  # byte offset of every buffer
    arena_size: int  # max(offset + size)
    naive_bound: int  # max_t sum(size live at t)
    lower_bound: int  # in-place aware live-set lower bound
    alignment: int = 1  # alignment the offsets were planned with
    # walk direction of every overlap record, (src, dst) -> "forward" | "reverse" | "disjoint"
    # (filled by plan(); see direction())
    directions: Dict[Tuple[str, str], str] = field(default_factory=dict)

    def direction(self, src: Union[str, Buffer], dst: Union[str, Buffer],
                  overlaps: Optional[Sequence[Overlap]] = None,
                  buffers: Optional[Sequence[Buffer]] = None) -> str:
        """Walk the op of record ``src -> dst`` must use with this placement.

        ``"forward"`` if ``offset(src) - offset(dst) >= min_gap`` (preferred when
        both windows hold), ``"reverse"`` if only ``<= max_gap`` holds,
        ``"disjoint"`` if the two do not share bytes (any walk is fine).
        ``src``/``dst`` are names or :class:`Buffer` objects.  Without
        ``overlaps`` the answer recorded by :func:`plan` is returned; with it the
        answer is recomputed from the record (sizes from Buffer arguments or
        ``buffers``, else the recorded answer is used).  Raises ``ValueError``
        if there is no such record or the pair shares bytes illegally."""
        s = src.name if isinstance(src, Buffer) else src
        d = dst.name if isinstance(dst, Buffer) else dst
        if overlaps is None:
            if (s, d) not in self.directions:
                raise ValueError(f"no overlap record {s!r} -> {d!r} in this plan")
            return self.directions[(s, d)]
        rec = next((o for o in overlaps if o.src == s and o.dst == d), None)
        if rec is None:
            raise ValueError(f"no overlap record {s!r} -> {d!r}")
        sizes = {b.name: b.size for b in (buffers or ())}
        for b in (src, dst):
            if isinstance(b, Buffer):
                sizes[b.name] = b.size
        if s not in sizes or d not in sizes:
            if (s, d) in self.directions:
                return self.directions[(s, d)]
            raise ValueError(f"sizes of {s!r} and {d!r} unknown: pass Buffer objects or buffers")
        for n in (s, d):
            if n not in self.offsets:
                raise ValueError(f"buffer {n!r} is not in this plan")
        res = _direction(self.offsets[s], sizes[s], self.offsets[d], sizes[d], rec.min_gap, rec.max_gap)
        if res is None:
            raise ValueError(f"{s!r} and {d!r} share bytes outside both windows of their record")
        return res

    def check(self, buffers: Sequence[Buffer], overlaps: Sequence[Overlap] = ()) -> None:
        """Raise ``ValueError``/``AssertionError`` if any planning rule is violated."""
        bufs, ovmap = _validate(buffers, overlaps)
        names = [b.name for b in bufs]
        if set(self.offsets) != set(names):
            missing = sorted(set(names) - set(self.offsets))
            extra = sorted(set(self.offsets) - set(names))
            raise AssertionError(f"offsets do not match buffers (missing={missing}, extra={extra})")
        end = 0
        for b in bufs:
            off = self.offsets[b.name]
            if not isinstance(off, int) or off < 0:
                raise AssertionError(f"buffer {b.name!r}: invalid offset {off!r}")
            if self.alignment > 1 and off % self.alignment:
                raise AssertionError(f"buffer {b.name!r}: offset {off} not aligned to {self.alignment}")
            end = max(end, off + b.size)
        if end != self.arena_size:
            raise AssertionError(f"arena_size {self.arena_size} != max(offset + size) = {end}")
        order = sorted(range(len(bufs)), key=lambda k: (bufs[k].first, k))
        for x in range(len(order)):
            a = bufs[order[x]]
            oa = self.offsets[a.name]
            for y in range(x + 1, len(order)):
                b = bufs[order[y]]
                if b.first > a.last:
                    break
                if a.first > b.last:
                    continue
                ob = self.offsets[b.name]
                if oa + a.size <= ob or ob + b.size <= oa:
                    continue
                rec = ovmap.get((a.name, b.name))
                if rec is not None and _allowed(oa - ob, rec):
                    continue
                rec = ovmap.get((b.name, a.name))
                if rec is not None and _allowed(ob - oa, rec):
                    continue
                raise AssertionError(
                    f"buffers {a.name!r} [{oa}, {oa + a.size}) and {b.name!r} "
                    f"[{ob}, {ob + b.size}) are live together and overlap illegally"
                )
        if self.lower_bound > self.arena_size:
            raise AssertionError(f"lower_bound {self.lower_bound} > arena_size {self.arena_size}")
        if bufs and self.lower_bound < max(b.size for b in bufs):
            raise AssertionError("lower_bound smaller than the largest buffer")
        if self.directions:
            size = {b.name: b.size for b in bufs}
            if set(self.directions) != set(ovmap):
                raise AssertionError("directions do not match the overlap records")
            for (s, d), (g, G) in ovmap.items():
                want = _direction(self.offsets[s], size[s], self.offsets[d], size[d], g, G)
                if self.directions[(s, d)] != want:
                    raise AssertionError(
                        f"direction of {s!r} -> {d!r} is {self.directions[(s, d)]!r}, placement says {want!r}")


# --------------------------------------------------------------------------- utils


def _align_up(x: int, a: int) -> int:
    return -(-x // a) * a


def _align_down(x: int, a: int) -> int:
    return (x // a) * a


def pair_span(size_in: int, size_out: int, min_gap: int, alignment: int = 1,
              max_gap: Optional[int] = None) -> int:
    """Smallest possible extent of an overlapping (src, dst) pair (see module doc).

    ``min(size_in + size_out, forward span, reverse span)`` where the forward
    span is ``max(size_in + max(g, 0), size_out)`` (``g`` = ``min_gap`` aligned
    up) and, when ``max_gap`` is given, the reverse span is
    ``max(size_in, size_out + max(-G, 0))`` (``G`` = ``max_gap`` aligned down)."""
    g = _align_up(min_gap, alignment) if alignment > 1 else min_gap
    best = min(size_in + size_out, max(size_in + max(g, 0), size_out))
    if max_gap is not None:
        G = _align_down(max_gap, alignment) if alignment > 1 else max_gap
        best = min(best, max(size_in, size_out + max(-G, 0)))
    return best


_Rec = Tuple[int, Optional[int]]  # (min_gap, max_gap) of one overlap record


def _allowed(d: int, rec: _Rec) -> bool:
    """May a pair with ``d = offset(src) - offset(dst)`` share bytes under ``rec``?"""
    g, G = rec
    return d >= g or (G is not None and d <= G)


def _direction(osrc: int, ssrc: int, odst: int, sdst: int, g: int, G: Optional[int]) -> Optional[str]:
    """'forward' / 'reverse' / 'disjoint' for a placed pair, None if the placement is illegal."""
    if osrc + ssrc <= odst or odst + sdst <= osrc:
        return "disjoint"
    d = osrc - odst
    if d >= g:
        return "forward"
    if G is not None and d <= G:
        return "reverse"
    return None


def _validate(
    buffers: Sequence[Buffer], overlaps: Sequence[Overlap]
) -> Tuple[List[Buffer], Dict[Tuple[str, str], _Rec]]:
    bufs = list(buffers)
    by_name: Dict[str, Buffer] = {}
    for b in bufs:
        if not isinstance(b, Buffer):
            raise ValueError(f"expected Buffer, got {b!r}")
        if b.name in by_name:
            raise ValueError(f"duplicate buffer name {b.name!r}")
        if not isinstance(b.size, int) or b.size <= 0:
            raise ValueError(f"buffer {b.name!r}: size must be a positive int, got {b.size!r}")
        if b.last < b.first:
            raise ValueError(f"buffer {b.name!r}: last ({b.last}) < first ({b.first})")
        by_name[b.name] = b
    ovmap: Dict[Tuple[str, str], _Rec] = {}
    for o in overlaps:
        if not isinstance(o, Overlap):
            raise ValueError(f"expected Overlap, got {o!r}")
        for n in (o.src, o.dst):
            if n not in by_name:
                raise ValueError(f"overlap {o.src!r} -> {o.dst!r}: unknown buffer {n!r}")
        if o.src == o.dst:
            raise ValueError(f"overlap {o.src!r} -> {o.dst!r}: src and dst are the same buffer")
        s, d = by_name[o.src], by_name[o.dst]
        if s.last != d.first:
            raise ValueError(
                f"illegal overlap {o.src!r} -> {o.dst!r}: src.last ({s.last}) != dst.first ({d.first}); "
                "an in-place overlap needs the op that reads src for the last time to write dst"
            )
        G = o.max_gap
        if G is not None and (isinstance(G, bool) or not isinstance(G, numbers.Integral)):
            raise ValueError(f"overlap {o.src!r} -> {o.dst!r}: max_gap must be an int or None, got {G!r}")
        key = (o.src, o.dst)
        rec = (int(o.min_gap), None if o.max_gap is None else int(o.max_gap))
        if (o.dst, o.src) in ovmap or ovmap.get(key, rec) != rec:
            raise ValueError(f"conflicting overlap records for {o.src!r} and {o.dst!r}")
        ovmap[key] = rec
    return bufs, ovmap


# --------------------------------------------------------------------------- bounds


def _group_bound(nodes: List[int], sizes: List[int], edges: Dict[Tuple[int, int], int]) -> int:
    """Best sum over families of singleton/pair groups with no edge between groups.

    ``edges`` maps (u, v) with u < v (indices into ``nodes``) to the pair span."""
    n = len(nodes)
    adj = [0] * n
    for (u, v) in edges:
        adj[u] |= 1 << v
        adj[v] |= 1 << u
    best = 0

    def rec(k: int, used: int, blocked: int, acc: int, rest: int) -> None:
        # used: nodes already in groups; blocked: nodes adjacent to some group
        nonlocal best
        if acc + rest <= best:
            return
        if k == n:
            best = max(best, acc)
            return
        bit = 1 << k
        rest2 = rest - sizes[k]
        if used & bit:
            rec(k + 1, used, blocked, acc, rest2)
            return
        if not (blocked & bit):
            # singleton group
            rec(k + 1, used | bit, blocked | adj[k], acc + sizes[k], rest2)
            # pair with a later, still free neighbour
            for v in range(k + 1, n):
                vb = 1 << v
                if (adj[k] & vb) and not (used & vb) and not (blocked & vb):
                    nb = adj[k] | adj[v]
                    # the partner must not touch any already chosen group
                    if nb & used & ~bit & ~vb:
                        continue
                    rec(k + 1, used | bit | vb, blocked | nb, acc + edges[(k, v)], rest2)
        rec(k + 1, used, blocked, acc, rest2)

    # 'rest' is an optimistic bound: every remaining node contributes its size
    # (a pair span never exceeds the sum of its two sizes).
    rec(0, 0, 0, 0, sum(sizes))
    return best


def _bounds(bufs: List[Buffer], ovmap: Dict[Tuple[str, str], _Rec], alignment: int) -> Tuple[int, int]:
    if not bufs:
        return 0, 0
    index = {b.name: k for k, b in enumerate(bufs)}
    events = sorted({b.first for b in bufs})  # live sets only grow at writes
    active: Dict[int, List[Tuple[int, int, int]]] = {}
    for (s, d), (g, G) in ovmap.items():
        bs, bd = bufs[index[s]], bufs[index[d]]
        span = pair_span(bs.size, bd.size, g, alignment, max_gap=G)
        active.setdefault(bd.first, []).append((index[s], index[d], span))
    naive = 0
    lower = max(b.size for b in bufs)
    for t in events:
        live = [k for k in range(len(bufs)) if bufs[k].first <= t <= bufs[k].last]
        total = sum(bufs[k].size for k in live)
        naive = max(naive, total)
        recs = sorted(active.get(t, []))
        if not recs:
            lower = max(lower, total)
            continue
        touched = sorted({k for r in recs for k in r[:2]})
        free_total = total - sum(bufs[k].size for k in touched)
        pos = {k: p for p, k in enumerate(touched)}
        sizes = [bufs[k].size for k in touched]
        edges = {}
        for s, d, sp in recs:
            u, v = sorted((pos[s], pos[d]))
            edges[(u, v)] = sp
        if len(touched) <= 14:
            part = _group_bound(touched, sizes, edges)
        else:
            # per connected component: max(max pair span, max size)
            parent = list(range(len(touched)))

            def find(x: int) -> int:
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                return x

            for (u, v) in edges:
                parent[find(u)] = find(v)
            comp: Dict[int, int] = {}
            for p in range(len(touched)):
                r = find(p)
                comp[r] = max(comp.get(r, 0), sizes[p])
            for (u, v), sp in edges.items():
                r = find(u)
                comp[r] = max(comp[r], sp)
            part = sum(comp.values())
        lower = max(lower, free_total + part)
    return naive, lower


# --------------------------------------------------------------------------- placement core


class _Problem:
    """Index-based view of the problem used by the placers."""

    def __init__(self, bufs: List[Buffer], ovmap: Dict[Tuple[str, str], _Rec], alignment: int):
        self.bufs = bufs
        self.n = len(bufs)
        self.a = alignment
        self.size = [b.size for b in bufs]
        self.first = [b.first for b in bufs]
        self.last = [b.last for b in bufs]
        index = {b.name: k for k, b in enumerate(bufs)}
        # ov[k][j] = (role, min_gap, max_gap): role 'd' means k is dst and j is src
        self.ov: List[Dict[int, Tuple[str, int, Optional[int]]]] = [dict() for _ in bufs]
        for (s, d), (g, G) in ovmap.items():
            si, di = index[s], index[d]
            self.ov[di][si] = ("d", g, G)
            self.ov[si][di] = ("s", g, G)
        n = self.n
        self.conf: List[List[int]] = [[] for _ in range(n)]
        order = sorted(range(n), key=lambda k: (self.first[k], k))
        for x in range(n):
            i = order[x]
            for y in range(x + 1, n):
                j = order[y]
                if self.first[j] > self.last[i]:
                    break
                self.conf[i].append(j)
                self.conf[j].append(i)
        for lst in self.conf:
            lst.sort()

    def feasible(self, i: int, offs: List[Optional[int]], top: Optional[int]) -> List[int]:
        """Aligned feasible offsets of buffer ``i`` that rest against something.

        Every placed conflicting buffer forbids an open range of offsets; the
        feasible set inside ``[0, top - size]`` is a union of segments and the
        returned candidates are the (aligned) ends of those segments, ascending.
        With ``top=None`` the space is unbounded above."""
        si = self.size[i]
        ovi = self.ov[i]
        forb = []
        for j in self.conf[i]:
            p = offs[j]
            if p is None:
                continue
            lo, hi = p - si, p + self.size[j]  # q in (lo, hi) overlaps j
            r = ovi.get(j)
            if r is not None:
                role, g, G = r
                if role == "d":
                    # allowed: p - q >= g <=> q <= p - g (forward), p - q <= G <=> q >= p - G (reverse)
                    lo = max(lo, p - g)
                    if G is not None:
                        hi = min(hi, p - G)
                else:
                    # i is src: allowed q - p >= g <=> q >= p + g (forward), q <= p + G (reverse)
                    hi = min(hi, p + g)
                    if G is not None:
                        lo = max(lo, p + G)
            if hi - lo > 1:
                forb.append((lo + 1, hi - 1))  # closed forbidden range
        lim = None if top is None else top - si
        if lim is not None and lim < 0:
            return []
        forb.sort()
        out: List[int] = []
        cur = 0  # lowest offset not yet known to be forbidden
        for flo, fhi in forb:
            if fhi < cur:
                continue
            if flo > cur:
                self._segment(cur, flo - 1, lim, out)
            cur = max(cur, fhi + 1)
            if lim is not None and cur > lim:
                break
        self._segment(cur, lim, lim, out)
        return out

    def _segment(self, lo: int, hi: Optional[int], lim: Optional[int], out: List[int]) -> None:
        a = self.a
        if lim is not None:
            hi = lim if hi is None else min(hi, lim)
        lo = _align_up(lo, a)
        if hi is None:
            out.append(lo)
            return
        hi = _align_down(hi, a)
        if lo <= hi:
            out.append(lo)
            if hi != lo:
                out.append(hi)


def _greedy(pb: _Problem, order: List[int]) -> List[int]:
    """Place each buffer, in ``order``, at its lowest feasible offset."""
    offs: List[Optional[int]] = [None] * pb.n
    for i in order:
        offs[i] = pb.feasible(i, offs, None)[0]
    return offs  # type: ignore[return-value]


def _greedy_by_size(pb: _Problem) -> List[int]:
    return _greedy(pb, sorted(range(pb.n), key=lambda k: (-pb.size[k], pb.first[k], k)))


def _greedy_in_order(pb: _Problem) -> List[int]:
    return _greedy(pb, sorted(range(pb.n), key=lambda k: (pb.first[k], -pb.size[k], k)))


def _greedy_by_area(pb: _Problem) -> List[int]:
    return _greedy(pb, sorted(range(pb.n), key=lambda k: (-(pb.last[k] - pb.first[k] + 1) * pb.size[k], k)))


def _greedy_by_lifetime(pb: _Problem) -> List[int]:
    return _greedy(pb, sorted(range(pb.n), key=lambda k: (pb.first[k] - pb.last[k], -pb.size[k], k)))


_GREEDIES = (_greedy_by_size, _greedy_in_order, _greedy_by_area, _greedy_by_lifetime)


class _Budget(Exception):
    pass


class _Searcher:
    """Depth-first placement in execution order within ``[0, top)``."""

    def __init__(self, pb: _Problem):
        self.pb = pb
        n = pb.n
        self.order = sorted(range(n), key=lambda k: (pb.first[k], -pb.size[k], k))
        # frontier[x]: buffers placed before position x that are still live when
        # order[x] is written -- the only placed buffers the rest depends on.
        self.frontier: List[List[int]] = []
        for x in range(n):
            f = pb.first[self.order[x]]
            self.frontier.append([self.order[y] for y in range(x) if pb.last[self.order[y]] >= f])
        self.nodes = 0

    def run(self, top: int, budget: int) -> Optional[List[int]]:
        pb = self.pb
        n = pb.n
        order, frontier = self.order, self.frontier
        offs: List[Optional[int]] = [None] * n
        failed = set()
        a = pb.a
        limit = self.nodes + budget

        def rec(x: int) -> bool:
            if x == n:
                return True
            key = (x, tuple([offs[j] for j in frontier[x]]))
            if key in failed:
                return False
            self.nodes += 1
            if self.nodes > limit:
                raise _Budget
            i = order[x]
            cands = pb.feasible(i, offs, top)
            if cands:
                # preference: tightest in-place positions, the two arena ends, the rest ascending
                pref = []
                for j, (role, g, G) in pb.ov[i].items():
                    p = offs[j]
                    if p is not None:
                        pref.append(_align_down(p - g, a) if role == "d" else _align_up(p + g, a))
                        if G is not None:
                            pref.append(_align_up(p - G, a) if role == "d" else _align_down(p + G, a))
                pref.append(cands[0])
                pref.append(cands[-1])
                cset = set(cands)
                seen = set()
                for q in itertools.chain(pref, cands):
                    if q in seen or q not in cset:
                        continue
                    seen.add(q)
                    offs[i] = q
                    if rec(x + 1):
                        return True
                offs[i] = None
            failed.add(key)
            return False

        old_limit = sys.getrecursionlimit()
        if old_limit < n + 200:
            sys.setrecursionlimit(n + 200)
        try:
            ok = rec(0)
        except _Budget:
            return None
        finally:
            sys.setrecursionlimit(old_limit)
        return list(offs) if ok else None  # type: ignore[arg-type]


def _arena(pb: _Problem, offs: Sequence[int]) -> int:
    return max((offs[k] + pb.size[k] for k in range(pb.n)), default=0)


# --------------------------------------------------------------------------- public API


def plan(buffers: Sequence[Buffer], overlaps: Sequence[Overlap] = (), alignment: int = 4,
         *, budget: int = 1000, total_budget: int = 8000) -> Plan:
    """Assign arena offsets to ``buffers`` (see the module docstring for the contract).

    ``budget`` bounds the number of search nodes per target arena size and
    ``total_budget`` the search nodes overall (work, not wall time, so results
    stay deterministic)."""
    if not isinstance(alignment, int) or alignment <= 0:
        raise ValueError(f"alignment must be a positive int, got {alignment!r}")
    bufs, ovmap = _validate(buffers, overlaps)
    naive, lower = _bounds(bufs, ovmap, alignment)
    if not bufs:
        return Plan({}, 0, 0, 0, alignment)
    pb = _Problem(bufs, ovmap, alignment)

    best: Optional[List[int]] = None
    for placer in _GREEDIES:
        try:
            offs = placer(pb)
        except RuntimeError:  # pragma: no cover
            continue
        if best is None or _arena(pb, offs) < _arena(pb, best):
            best = offs
    if best is None:  # pragma: no cover - last resort: all disjoint
        best, cur = [], 0
        for b in bufs:
            best.append(cur)
            cur = _align_up(cur + b.size, alignment)
    best_size = _arena(pb, best)

    if best_size > lower:
        searcher = _Searcher(pb)
        found = searcher.run(lower, min(budget, total_budget))
        if found is not None:
            best, best_size = found, _arena(pb, found)
        else:
            lo, hi = lower + 1, best_size - 1  # answer somewhere in [lo, hi] (or greedy)
            tol = max(alignment, lower // 500)
            while lo <= hi and hi - lo >= tol and searcher.nodes < total_budget:
                mid = (lo + hi) // 2
                found = searcher.run(mid, min(budget, total_budget - searcher.nodes))
                if found is not None:
                    best, best_size = found, _arena(pb, found)
                    hi = best_size - 1
                else:
                    lo = mid + 1
    offsets = {b.name: int(best[k]) for k, b in enumerate(bufs)}
    size = {b.name: b.size for b in bufs}
    directions: Dict[Tuple[str, str], str] = {}
    for (s, d), (g, G) in ovmap.items():
        directions[(s, d)] = _direction(offsets[s], size[s], offsets[d], size[d], g, G) or "illegal"
    result = Plan(offsets, best_size, naive, lower, alignment, directions)
    result.check(bufs, overlaps)
    return result
