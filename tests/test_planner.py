"""Unit tests for the activation-arena memory planner (micronets.compiler.planner)."""
import random

import pytest

from micronets.compiler.planner import Buffer, Overlap, Plan, pair_span, plan

F = 4  # bytes per float32 element


# --------------------------------------------------------------------------- helpers


class Graph:
    """Tiny op-list builder: each op writes one tensor and reads some earlier ones."""

    def __init__(self):
        self.ops = []  # (name, size, [(input name, gap, (min_gap, max_gap) or None)])

    def op(self, size, *inputs):
        name = f"t{len(self.ops)}"
        self.ops.append((name, size, list(inputs)))
        return name

    def build(self):
        first, last, size = {}, {}, {}
        for t, (n, sz, ins) in enumerate(self.ops):
            first[n] = last[n] = t
            size[n] = sz
            for i, _ in ins:
                last[i] = max(last[i], t)
        bufs = [Buffer(n, size[n], first[n], last[n]) for n, _, _ in self.ops]
        ovs = []
        for t, (n, _, ins) in enumerate(self.ops):
            for i, g in ins:
                if g is not None and last[i] == t:
                    ovs.append(Overlap(i, n, *g) if isinstance(g, tuple) else Overlap(i, n, g))
        return bufs, ovs


def chain(specs):
    """specs: [(size, gap to previous tensor or None[, max_gap])]; tensor k is written by op k,
    read by op k+1."""
    bufs, ovs = [], []
    for k, (s, g, *rest) in enumerate(specs):
        bufs.append(Buffer(f"x{k}", s, k, k + 1))
        if k and g is not None:
            ovs.append(Overlap(f"x{k - 1}", f"x{k}", g, *rest))
    return bufs, ovs


def dw(h, c, stride=1):
    """Depthwise 3x3 conv keeping C; stride 1 needs one output row of gap."""
    if stride == 2:
        return ((h // 2) * (h // 2) * c * F, 0)
    return (h * h * c * F, h * c * F)


def pw(h, cin, cout):
    """1x1 conv: expanding -> input must end where output ends; shrinking -> start together."""
    i, o = h * h * cin * F, h * h * cout * F
    return (o, o - i if cout > cin else 0)


def mobilenet_chain():
    # 96x96x1 input lives outside the arena; first conv writes 32x32x3.
    specs = [(32 * 32 * 3 * F, None)]
    h, c = 32, 3
    for stride, cout in [(2, 3), (1, 6), (2, 6), (1, 12), (1, 12), (1, 12), (2, 12), (1, 24),
                         (1, 24), (1, 24), (2, 24), (1, 48), (1, 48), (1, 96)]:
        if stride == 2:
            specs.append(dw(h, c, 2))
            h //= 2
        else:
            specs.append(dw(h, c, 1))
        specs.append((h * h * c * F, 0))  # ReLU
        specs.append(pw(h, c, cout))
        c = cout
        specs.append((h * h * c * F, 0))  # ReLU
    specs += [(c * F, None), (10 * F, None), (10 * F, 0)]  # pool, dense, softmax
    return chain(specs)


def bottleneck_chain():
    """Chain whose peak is an in-place step in the middle (not the first tensor)."""
    h = 16
    specs = [(h * h * 4 * F, None)]
    for cin, cexp, cout in [(4, 24, 8), (8, 32, 8), (8, 48, 16), (16, 32, 16)]:
        specs.append(pw(h, cin, cexp))
        specs.append((h * h * cexp * F, 0))  # ReLU
        specs.append(dw(h, cexp))
        specs.append((h * h * cexp * F, 0))  # ReLU
        specs.append(pw(h, cexp, cout))
    specs += [(16 * F, None), (10 * F, None)]
    return chain(specs)


def inverted_residual_net(se=False, h=24, c=4,
                          cfg=((6, 8, 2, 1), (6, 12, 3, 2), (6, 16, 3, 2), (6, 24, 2, 1))):
    g = Graph()
    x = g.op(h * h * c * F)
    for exp, cout, n, stride in cfg:
        for r in range(n):
            s = stride if r == 0 else 1
            inp, cin, ce = x, c, c * exp
            x = g.op(h * h * ce * F, (x, h * h * (ce - cin) * F))  # expand
            x = g.op(h * h * ce * F, (x, 0))  # ReLU
            h2 = h // s
            x = g.op(h2 * h2 * ce * F, (x, 0 if s == 2 else h2 * ce * F))  # depthwise
            h = h2
            x = g.op(h * h * ce * F, (x, 0))  # ReLU
            if se:
                e = x
                p = g.op(ce * F, (e, None))  # global pool
                p = g.op(max(ce // 4, 1) * F, (p, None))
                p = g.op(ce * F, (p, None))
                x = g.op(h * h * ce * F, (e, 0), (p, None))  # broadcast multiply
            x = g.op(h * h * cout * F, (x, 0))  # project (shrinking)
            if s == 1 and cin == cout:
                x = g.op(h * h * cout * F, (x, 0), (inp, 0))  # residual add
            c = cout
    x = g.op(c * F, (x, None))
    x = g.op(10 * F, (x, None))
    return g.build()


def random_graph(seed, n=200, lam=0.5, max_words=5000, reverse=0.0):
    """``reverse``: probability that an in-place record also gets a reverse window."""
    rng = random.Random(seed)
    rrng = random.Random(seed + 7919)  # separate stream: reverse=0 gives the historical graphs
    g = Graph()
    names = []
    for _ in range(n):
        ins = []
        if names:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                j = max(0, len(names) - 1 - int(rng.expovariate(lam)))
                if any(names[j] == a for a, _ in ins):
                    continue
                gap = rng.choice([None, 0, rng.randrange(-4096, 4096, 4)])
                if gap is not None and rrng.random() < reverse:
                    gap = (gap, rrng.choice([0, -rrng.randrange(0, 4096, 4), rrng.randrange(-4096, 4096)]))
                ins.append((names[j], gap))
        names.append(g.op(rng.randrange(1, max_words) * 4, *ins))
    return g.build()


def allowed(d, rec):
    """May src/dst of ``rec`` = (min_gap, max_gap) share bytes at d = offset(src) - offset(dst)?"""
    g, G = rec
    return d >= g or (G is not None and d <= G)


def exact_chain_optimum(bufs, ovs, alignment=4):
    """Exact minimum arena for a chain (buffer k conflicts only with k-1, k+1) by DP over offsets."""
    gaps = {(o.src, o.dst): (o.min_gap, o.max_gap) for o in ovs}

    def ok(pa, sa, pb, sb, g):
        if pa + sa <= pb or pb + sb <= pa:
            return True
        return g is not None and allowed(pa - pb, g)

    def feasible(M):
        cur = set(range(0, M - bufs[0].size + 1, alignment))
        for k in range(1, len(bufs)):
            s0, s1 = bufs[k - 1].size, bufs[k].size
            g = gaps.get((bufs[k - 1].name, bufs[k].name))
            nxt = {q for q in range(0, M - s1 + 1, alignment) if any(ok(p, s0, q, s1, g) for p in cur)}
            if not nxt:
                return False
            cur = nxt
        return True

    M = max(b.size for b in bufs)
    while not feasible(M):
        M += 1
    return M


def live_together(a, b):
    return a.first <= b.last and b.first <= a.last


def disjoint(p, a, b):
    oa, ob = p.offsets[a.name], p.offsets[b.name]
    return oa + a.size <= ob or ob + b.size <= oa


# --------------------------------------------------------------------------- validation


def test_empty():
    p = plan([])
    assert p.arena_size == 0 and p.offsets == {}
    p.check([], [])


@pytest.mark.parametrize(
    "bufs, ovs, msg",
    [
        ([Buffer("a", 4, 0, 1), Buffer("a", 8, 1, 2)], [], "duplicate"),
        ([Buffer("a", 0, 0, 1)], [], "size"),
        ([Buffer("a", -4, 0, 1)], [], "size"),
        ([Buffer("a", 4, 2, 1)], [], "last"),
        ([Buffer("a", 4, 0, 1)], [Overlap("a", "zz", 0)], "unknown"),
        ([Buffer("a", 4, 0, 1), Buffer("b", 4, 1, 2)], [Overlap("a", "b", 0), Overlap("a", "b", 4)],
         "conflicting"),
        ([Buffer("a", 4, 1, 1), Buffer("b", 4, 1, 1)], [Overlap("a", "b", 0), Overlap("b", "a", 0)],
         "conflicting"),
    ],
)
def test_invalid_input(bufs, ovs, msg):
    with pytest.raises(ValueError, match=msg):
        plan(bufs, ovs)


def test_illegal_overlap_names_both():
    # 'a' is still read at op 2, so op 1 writing 'b' cannot overwrite it.
    bufs = [Buffer("a", 64, 0, 2), Buffer("b", 64, 1, 2)]
    with pytest.raises(ValueError, match="'a'.*'b'"):
        plan(bufs, [Overlap("a", "b", 0)])
    with pytest.raises(ValueError):
        plan(bufs, [Overlap("b", "a", 0)])


def test_bad_alignment():
    with pytest.raises(ValueError):
        plan([Buffer("a", 4, 0, 0)], alignment=0)


# --------------------------------------------------------------------------- bounds


def test_pair_span_matches_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        i, o = rng.randrange(1, 40), rng.randrange(1, 40)
        g = rng.randrange(-50, 60)
        best = i + o  # disjoint placement
        for d in range(-100, 100):  # d = offset(src) - offset(dst)
            if d >= g:
                best = min(best, max(i, o - d) - min(0, -d))
        assert pair_span(i, o, g) == best, (i, o, g)


def test_pair_span_examples():
    assert pair_span(100, 400, 300) == 400  # expanding 1x1: fully in place
    assert pair_span(400, 100, 0) == 400  # shrinking: start together
    assert pair_span(400, 100, -200) == 400
    assert pair_span(256, 256, 32) == 288  # depthwise: one row of gap
    assert pair_span(100, 100, 1000) == 200  # gap too large: disjoint
    assert pair_span(10, 10, 2, alignment=4) == 14  # aligned offsets round the gap up


def test_bounds_simple_chain():
    bufs, ovs = chain([(1000, None), (1000, 0), (3000, 2000), (3000, 120)])
    p = plan(bufs, ovs)
    assert p.naive_bound == 6000
    assert p.lower_bound == 3120
    assert p.arena_size == 3120


def test_lower_bound_shared_dst_concat_is_valid():
    # c = concat(a, b) written in place over both inputs: saves both, so
    # "largest single saving" would overestimate the bound.
    bufs = [Buffer("a", 40, 0, 2), Buffer("b", 40, 1, 2), Buffer("c", 80, 2, 3)]
    ovs = [Overlap("a", "c", 0), Overlap("b", "c", -40)]
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.lower_bound <= p.arena_size
    assert p.lower_bound == 80
    assert p.arena_size == 80


def exact_optimum(bufs, ovs, alignment=1):
    """Exhaustive minimum arena (offsets multiples of ``alignment``) for tiny graphs."""
    gaps = {(o.src, o.dst): (o.min_gap, o.max_gap) for o in ovs}

    def ok(a, pa, b, pb):
        if not live_together(a, b) or pa + a.size <= pb or pb + b.size <= pa:
            return True
        if (a.name, b.name) in gaps:
            return allowed(pa - pb, gaps[(a.name, b.name)])
        if (b.name, a.name) in gaps:
            return allowed(pb - pa, gaps[(b.name, a.name)])
        return False

    def fits(M, k, placed):
        if k == len(bufs):
            return True
        b = bufs[k]
        for q in range(0, M - b.size + 1, alignment):
            if all(ok(bufs[j], placed[j], b, q) for j in range(k)):
                if fits(M, k + 1, placed + [q]):
                    return True
        return False

    M = max(b.size for b in bufs)
    while not fits(M, 0, []):
        M += 1
    return M


@pytest.mark.parametrize("seed", range(40))
def test_lower_bound_below_exhaustive_optimum(seed):
    # tiny graphs with many overlap records, including several sharing a buffer
    rng = random.Random(seed)
    n = rng.randrange(2, 5)
    bufs = []
    for k in range(n):
        first = rng.randrange(0, 3)
        bufs.append(Buffer(f"b{k}", rng.randrange(1, 7), first, first + rng.randrange(0, 3)))
    ovs, pairs = [], set()
    for a in bufs:
        for b in bufs:
            if a is not b and a.last == b.first and (b.name, a.name) not in pairs and rng.random() < 0.8:
                pairs.add((a.name, b.name))
                ovs.append(Overlap(a.name, b.name, rng.randrange(-4, 5)))
    p = plan(bufs, ovs, alignment=1)
    p.check(bufs, ovs)
    opt = exact_optimum(bufs, ovs)
    assert p.lower_bound <= opt <= p.arena_size
    assert p.arena_size == opt


def test_residual_add_bound():
    # add(A, E) -> F in place over either input: A and E must be disjoint.
    bufs = [Buffer("A", 100, 0, 4), Buffer("B", 100, 1, 2), Buffer("C", 100, 2, 3),
            Buffer("E", 100, 3, 4), Buffer("F", 100, 4, 5)]
    ovs = [Overlap("B", "C", 0), Overlap("C", "E", 0), Overlap("A", "F", 0), Overlap("E", "F", 0)]
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.lower_bound == 200
    assert p.arena_size == 200


# --------------------------------------------------------------------------- chains


def test_mobilenet_chain_hits_lower_bound():
    bufs, ovs = mobilenet_chain()
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size == p.lower_bound
    assert p.naive_bound >= p.arena_size


def test_bottleneck_chain_hits_lower_bound():
    bufs, ovs = bottleneck_chain()
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    # the peak is the depthwise step on the 48-channel tensor: size + one row
    assert p.lower_bound == 16 * 16 * 48 * F + 16 * 48 * F
    assert p.arena_size == p.lower_bound
    assert p.naive_bound >= p.arena_size


def test_expanding_and_shrinking_conv_layouts():
    # expanding 1x1: input must end where output ends
    bufs, ovs = chain([(400, None), (1600, 1200)])
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size == 1600
    assert p.offsets["x0"] + 400 == p.offsets["x1"] + 1600
    # shrinking: input and output start together (or output later)
    bufs, ovs = chain([(1600, None), (400, 0)])
    p = plan(bufs, ovs)
    assert p.arena_size == 1600
    assert p.offsets["x1"] <= p.offsets["x0"]


def test_alternating_depthwise_chain():
    # consecutive same-size steps with a positive gap drift downwards, so the
    # planner must jump to the other end of the arena; compare with the exact optimum.
    S, row = 256, 32
    bufs, ovs = chain([(S, None)] + [(S, row)] * 4)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size == exact_chain_optimum(bufs, ovs)


@pytest.mark.parametrize("seed", range(12))
def test_random_chain_matches_exact_optimum(seed):
    rng = random.Random(seed)
    specs = [(rng.randrange(1, 16) * 4, None)]
    for _ in range(rng.randrange(3, 9)):
        s = rng.randrange(1, 16) * 4
        prev = specs[-1][0]
        g = rng.choice([0, s - prev, -rng.randrange(0, 8) * 4, rng.randrange(1, 4) * 4, None])
        specs.append((s, g))
    bufs, ovs = chain(specs)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    opt = exact_chain_optimum(bufs, ovs)
    assert p.lower_bound <= opt
    assert p.arena_size == opt, (specs, p.arena_size, opt, p.lower_bound)


def test_gap_not_met_forces_disjoint():
    bufs, ovs = chain([(100, None), (100, 1000)])
    p = plan(bufs, ovs, alignment=4)
    p.check(bufs, ovs)
    assert disjoint(p, bufs[0], bufs[1])


# --------------------------------------------------------------------------- branches


def test_residual_block_keeps_input_intact():
    g = Graph()
    a = g.op(8 * 8 * 16 * F)  # op 0 writes A
    x = g.op(8 * 8 * 64 * F, (a, None))  # op 1 expand (A still needed: no overlap)
    x = g.op(8 * 8 * 64 * F, (x, 0))  # ReLU
    x = g.op(8 * 8 * 64 * F, (x, 8 * 64 * F))  # depthwise
    x = g.op(8 * 8 * 16 * F, (x, 0))  # project
    y = g.op(8 * 8 * 16 * F, (x, 0), (a, 0))  # add at op 5 (= t + 4)
    g.op(10 * F, (y, None))
    bufs, ovs = g.build()
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    A = bufs[0]
    for b in bufs[1:5]:
        assert live_together(A, b) and disjoint(p, A, b), b.name
    assert p.arena_size <= 1.10 * p.lower_bound
    assert p.arena_size == p.lower_bound


def test_squeeze_excite_block():
    g = Graph()
    x = g.op(12 * 12 * 8 * F)
    e = g.op(12 * 12 * 48 * F, (x, 12 * 12 * 40 * F))  # expand
    s = g.op(48 * F, (e, None))  # global pool
    s = g.op(12 * F, (s, None))
    s = g.op(48 * F, (s, None))
    y = g.op(12 * 12 * 48 * F, (e, 0), (s, None))  # multiply, in place over e
    g.op(12 * 12 * 8 * F, (y, 0))
    bufs, ovs = g.build()
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    E = bufs[1]
    for b in bufs[2:5]:
        assert disjoint(p, E, b)
    # peak while the side branch runs: expanded tensor + pooled (48) + squeezed (12)
    assert p.lower_bound == 12 * 12 * 48 * F + 48 * F + 12 * F
    assert p.arena_size <= 1.10 * p.lower_bound
    assert p.arena_size == p.lower_bound


@pytest.mark.parametrize("se", [False, True])
@pytest.mark.parametrize("shape", [
    dict(h=24, c=4, cfg=((6, 8, 2, 1), (6, 12, 3, 2), (6, 16, 3, 2), (6, 24, 2, 1))),
    dict(h=32, c=3, cfg=((1, 8, 1, 1), (6, 8, 2, 2), (4, 16, 3, 2), (6, 16, 3, 1), (6, 32, 2, 2))),
    dict(h=16, c=8, cfg=((3, 8, 4, 1), (5, 16, 4, 2), (3, 24, 4, 1))),
])
def test_inverted_residual_networks(se, shape):
    bufs, ovs = inverted_residual_net(se=se, **shape)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size <= 1.10 * p.lower_bound
    assert p.arena_size <= p.naive_bound


# --------------------------------------------------------------------------- random graphs


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_valid(seed):
    bufs, ovs = random_graph(seed, n=120, lam=[0.5, 0.2][seed % 2])
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size >= p.lower_bound >= max(b.size for b in bufs)
    assert p.naive_bound >= p.lower_bound
    assert all(off % 4 == 0 for off in p.offsets.values())


def test_random_small_graphs_many():
    for seed in range(60):
        rng = random.Random(1000 + seed)
        bufs, ovs = random_graph(seed, n=rng.randrange(1, 25), lam=0.4, max_words=50)
        align = rng.choice([1, 4, 16])
        p = plan(bufs, ovs, alignment=align)
        p.check(bufs, ovs)
        assert p.arena_size >= p.lower_bound >= max(b.size for b in bufs)
        assert all(off % align == 0 for off in p.offsets.values())


def test_alignment_respected():
    bufs, ovs = chain([(30, None), (50, 20), (10, 0), (70, 60)])
    p = plan(bufs, ovs, alignment=16)
    p.check(bufs, ovs)
    assert all(off % 16 == 0 for off in p.offsets.values())


def test_deterministic():
    for bufs, ovs in (random_graph(3, n=150, lam=0.2), inverted_residual_net(se=True)):
        p1, p2 = plan(bufs, ovs), plan(list(bufs), list(ovs))
        assert p1 == p2


def test_200_buffers():
    """A valid plan of 200 buffers (how long it takes: benchmarks/planner_speed.py, not a test)."""
    bufs, ovs = random_graph(7, n=200, lam=0.2)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size >= p.lower_bound


# --------------------------------------------------------------------------- Plan.check


def test_check_detects_violations():
    bufs, ovs = chain([(100, None), (100, 0), (100, 8)])
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    # x1 -> x2 needs offset(x1) - offset(x2) >= 8: placing them together breaks it
    bad = dict(p.offsets)
    bad["x2"] = bad["x1"]
    end = max(bad[b.name] + b.size for b in bufs)
    with pytest.raises(AssertionError):
        Plan(bad, end, p.naive_bound, p.lower_bound, p.alignment).check(bufs, ovs)
    # without the overlap record the same layout is illegal even for x0 -> x1
    shared = Plan({"x0": 0, "x1": 0, "x2": 200}, 300, p.naive_bound, 100)
    shared.check(bufs, ovs)  # x0 -> x1 is elementwise (gap 0): sharing is fine
    with pytest.raises(AssertionError):
        shared.check(bufs, [])
    with pytest.raises(AssertionError):
        Plan(p.offsets, p.arena_size + 4, p.naive_bound, p.lower_bound, p.alignment).check(bufs, ovs)
    with pytest.raises(AssertionError):
        Plan({"x0": 0}, 100, 0, 0).check(bufs, ovs)
    with pytest.raises(AssertionError):
        Plan(dict(p.offsets, x0=2), p.arena_size, p.naive_bound, p.lower_bound, 4).check(bufs, ovs)


# --------------------------------------------------------------------------- reverse walk (max_gap)


def test_overlap_max_gap_defaults_to_none():
    o = Overlap("a", "b", 4)
    assert o.max_gap is None and o == Overlap("a", "b", 4, None)
    assert Overlap("a", "b", 4, -8).max_gap == -8


@pytest.mark.parametrize("bad", [1.5, "0", True])
def test_max_gap_must_be_int_or_none(bad):
    bufs = [Buffer("a", 4, 0, 1), Buffer("b", 4, 1, 2)]
    with pytest.raises(ValueError, match="max_gap"):
        plan(bufs, [Overlap("a", "b", 0, bad)])


def test_conflicting_max_gap_rejected():
    bufs = [Buffer("a", 4, 0, 1), Buffer("b", 4, 1, 2)]
    with pytest.raises(ValueError, match="conflicting"):
        plan(bufs, [Overlap("a", "b", 0, 4), Overlap("a", "b", 0)])
    with pytest.raises(ValueError, match="conflicting"):
        plan(bufs, [Overlap("a", "b", 0, 4), Overlap("a", "b", 0, 8)])
    plan(bufs, [Overlap("a", "b", 0, 4), Overlap("a", "b", 0, 4)]).check(bufs, [Overlap("a", "b", 0, 4)])


def test_pair_span_two_windows_matches_brute_force():
    rng = random.Random(1)
    for _ in range(600):
        i, o = rng.randrange(1, 40), rng.randrange(1, 40)
        g = rng.randrange(-50, 60)
        G = rng.choice([None, rng.randrange(-60, 50)])
        a = rng.choice([1, 1, 2, 4])
        best = i + o  # disjoint placement
        for d in range(-100 * a, 100 * a, a):  # both offsets aligned, so d is too
            if d >= g or (G is not None and d <= G):
                best = min(best, max(i, o - d) - min(0, -d))
        assert pair_span(i, o, g, a, max_gap=G) == best, (i, o, g, G, a)
        if G is None:
            assert pair_span(i, o, g, a) == best


def test_pair_span_reverse_examples():
    assert pair_span(100, 400, 1000, max_gap=0) == 400  # expanding, reverse: start together
    assert pair_span(400, 100, 1000, max_gap=300) == 400  # shrinking, reverse: end-aligned
    assert pair_span(400, 100, 1000, max_gap=200) == 400
    assert pair_span(100, 100, 1000, max_gap=-32) == 132  # reverse depthwise: one row of gap
    assert pair_span(100, 100, 1000, max_gap=-1000) == 200  # both windows too far: disjoint
    assert pair_span(10, 10, 100, alignment=4, max_gap=-2) == 14  # max_gap rounds down


def motivating_chain(reverse):
    """X0 -op1-> X1 -op2-> X2 -op3-> X3 with per-op workspaces W1..W3."""
    bufs = [Buffer("X0", 26508, 0, 1), Buffer("W1", 3408, 1, 1), Buffer("X1", 13824, 1, 2),
            Buffer("W2", 3504, 2, 2), Buffer("X2", 27648, 2, 3), Buffer("W3", 3504, 3, 3),
            Buffer("X3", 6912, 3, 4)]
    ovs = [Overlap("X0", "X1", -552, (26508 - 13824) + 552 if reverse else None),
           Overlap("X1", "X2", 12096, 0 if reverse else None),
           Overlap("X2", "X3", -30000)]
    return bufs, ovs


def test_reverse_window_reaches_lower_bound():
    bufs, ovs = motivating_chain(reverse=False)
    fwd = plan(bufs, ovs)
    fwd.check(bufs, ovs)
    # forward only: X2 + W2 = bound needs X1 >= 12096 above X2's start, so X0 (>= X1 - 552)
    # ends past 38052 -- the bound 31152 is out of reach.
    assert fwd.lower_bound == 31152
    assert fwd.arena_size >= 38052
    bufs, ovs = motivating_chain(reverse=True)
    rev = plan(bufs, ovs)
    rev.check(bufs, ovs)
    assert rev.lower_bound == 31152
    assert rev.arena_size <= 1.01 * rev.lower_bound
    assert rev.arena_size == rev.lower_bound
    # op2 can only be in place by walking backwards
    assert rev.direction("X1", "X2", ovs, bufs) == "reverse"
    assert rev.direction("X1", "X2") == "reverse"
    for o in ovs:
        assert rev.direction(o.src, o.dst) == rev.directions[(o.src, o.dst)]
        assert rev.direction(o.src, o.dst, ovs, bufs) == rev.directions[(o.src, o.dst)]
    assert set(rev.directions) == {(o.src, o.dst) for o in ovs}


def test_reverse_expanding_and_shrinking_layouts():
    # expanding 1x1 with a forward gap too large to matter, reverse 0: output starts at/after input
    bufs, ovs = chain([(400, None), (1600, 10 ** 6, 0)])
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size == 1600
    assert p.offsets["x0"] - p.offsets["x1"] <= 0
    assert p.direction("x0", "x1") == "reverse"
    # shrinking 1x1, reverse window end-aligned
    bufs, ovs = chain([(1600, None), (400, 10 ** 6, 1200)])
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size == 1600
    assert p.direction("x0", "x1") == "reverse"


def test_direction_prefers_forward_and_reports_disjoint():
    a, b = Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2)
    rec = [Overlap("a", "b", 0, 0)]
    assert Plan({"a": 0, "b": 0}, 100, 200, 100, 1).direction(a, b, rec) == "forward"  # both hold
    assert Plan({"a": 0, "b": 8}, 108, 200, 100, 1).direction(a, b, rec) == "reverse"
    assert Plan({"a": 8, "b": 0}, 108, 200, 100, 1).direction(a, b, rec) == "forward"
    assert Plan({"a": 0, "b": 100}, 200, 200, 100, 1).direction("a", "b", rec, [a, b]) == "disjoint"
    bad = Plan({"a": 0, "b": 8}, 108, 200, 100, 1)
    with pytest.raises(ValueError):
        bad.direction(a, b, [Overlap("a", "b", 0)])  # shares bytes outside the only window
    with pytest.raises(ValueError):
        bad.direction("b", "a", rec, [a, b])  # no such record
    with pytest.raises(ValueError):
        bad.direction("a", "b", rec)  # sizes unknown and nothing recorded
    with pytest.raises(ValueError):
        bad.direction("a", "b")


def test_check_validates_reverse_window_and_directions():
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2)]
    fwd_only = [Overlap("a", "b", 0)]
    two = [Overlap("a", "b", 0, -8)]
    p = Plan({"a": 0, "b": 8}, 108, 200, 108, 1)  # d = -8: only the reverse window allows it
    p.check(bufs, two)
    with pytest.raises(AssertionError):
        p.check(bufs, fwd_only)
    with pytest.raises(AssertionError):
        Plan({"a": 0, "b": 4}, 104, 200, 104, 1).check(bufs, two)  # d = -4: in neither window
    good = Plan({"a": 0, "b": 8}, 108, 200, 108, 1, {("a", "b"): "reverse"})
    good.check(bufs, two)
    with pytest.raises(AssertionError):
        Plan({"a": 0, "b": 8}, 108, 200, 108, 1, {("a", "b"): "forward"}).check(bufs, two)


@pytest.mark.parametrize("seed", range(40))
def test_two_window_lower_bound_below_exhaustive_optimum(seed):
    rng = random.Random(5000 + seed)
    n = rng.randrange(2, 5)
    bufs = []
    for k in range(n):
        first = rng.randrange(0, 3)
        bufs.append(Buffer(f"b{k}", rng.randrange(1, 7), first, first + rng.randrange(0, 3)))
    ovs, pairs = [], set()
    for a in bufs:
        for b in bufs:
            if a is not b and a.last == b.first and (b.name, a.name) not in pairs and rng.random() < 0.8:
                pairs.add((a.name, b.name))
                G = rng.choice([None, rng.randrange(-6, 3)])
                ovs.append(Overlap(a.name, b.name, rng.randrange(-4, 7), G))
    align = 1 if seed % 2 else 2
    p = plan(bufs, ovs, alignment=align)
    p.check(bufs, ovs)
    opt = exact_optimum(bufs, ovs, alignment=align)
    assert p.lower_bound <= opt <= p.arena_size
    assert p.arena_size == opt
    for o in ovs:
        assert p.direction(o.src, o.dst, ovs, bufs) == p.direction(o.src, o.dst)


@pytest.mark.parametrize("seed", range(12))
def test_random_two_window_chain_matches_exact_optimum(seed):
    rng = random.Random(300 + seed)
    specs = [(rng.randrange(1, 16) * 4, None)]
    for _ in range(rng.randrange(3, 9)):
        s = rng.randrange(1, 16) * 4
        prev = specs[-1][0]
        g = rng.choice([0, s - prev, -rng.randrange(0, 8) * 4, rng.randrange(1, 4) * 4, 10 ** 6, None])
        if g is not None and rng.random() < 0.6:
            specs.append((s, g, rng.choice([0, prev - s, -rng.randrange(0, 8) * 4, rng.randrange(-20, 20)])))
        else:
            specs.append((s, g))
    bufs, ovs = chain(specs)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    opt = exact_chain_optimum(bufs, ovs)
    assert p.lower_bound <= opt
    assert p.arena_size == opt, (specs, p.arena_size, opt, p.lower_bound)


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_mixed_windows_valid(seed):
    bufs, ovs = random_graph(seed, n=120, lam=[0.5, 0.2][seed % 2], reverse=0.5)
    assert any(o.max_gap is not None for o in ovs) and any(o.max_gap is None for o in ovs)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size >= p.lower_bound >= max(b.size for b in bufs)
    assert p.naive_bound >= p.lower_bound
    assert all(off % 4 == 0 for off in p.offsets.values())
    assert set(p.directions) == {(o.src, o.dst) for o in ovs}
    # a reverse window can only help: never worse than the bound of the forward-only problem
    fwd = [Overlap(o.src, o.dst, o.min_gap) for o in ovs]
    assert p.lower_bound <= plan(bufs, fwd).lower_bound


def test_random_small_graphs_mixed_windows_many():
    for seed in range(60):
        rng = random.Random(2000 + seed)
        bufs, ovs = random_graph(seed, n=rng.randrange(1, 25), lam=0.4, max_words=50, reverse=0.5)
        align = rng.choice([1, 4, 16])
        p = plan(bufs, ovs, alignment=align)
        p.check(bufs, ovs)
        assert p.arena_size >= p.lower_bound >= max(b.size for b in bufs)
        assert all(off % align == 0 for off in p.offsets.values())


def test_200_buffers_two_windows():
    """The same with reverse windows (timed in benchmarks/planner_speed.py)."""
    bufs, ovs = random_graph(7, n=200, lam=0.2, reverse=0.5)
    p = plan(bufs, ovs)
    p.check(bufs, ovs)
    assert p.arena_size >= p.lower_bound
