"""Mateformer: exactness vs. the spec's pseudo-code, set/query properties, masks, size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from loc.models import Mateformer, build_model, count_parameters
from loc.models.attention import MultiheadAttention, set_fused_attention

SMALL = dict(in_shape=(1, 4, 4), d_model=32, depth=2, n_heads=4, d_ff=48, relative=False)


def _inputs(b=2, p=6, q=3, seed=0, shape=(1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, p, *shape, 2, generator=g),
        50 + 10 * torch.randn(b, p, 2, generator=g),
        torch.randn(b, q, *shape, 2, generator=g),
    )


def _model(**kw):
    torch.manual_seed(0)
    m = Mateformer(**{**SMALL, **kw}).eval()
    with torch.no_grad():  # non-zero x type embeddings so they matter in the checks
        m.nei_embed_x.normal_()
        m.cur_embed_x.normal_()
    return m


def reference_forward(m: Mateformer, nei_h, nei_x, cur_h, use_mask: bool = True):
    """Spec §3.3 pseudo-code with torch.nn.MultiheadAttention and the additive mask."""
    b, p = nei_x.shape[:2]
    q = cur_h.shape[1]
    t = p + q
    d = m.input_fc_x.out_features
    h = torch.cat([nei_h, cur_h], 1).reshape(b, t, -1)
    x = torch.cat([nei_x, nei_x.mean(1, keepdim=True).repeat(1, q, 1)], 1)
    h = m.input_fc_h(h) + torch.cat([m.nei_embed_h.repeat(p, 1), m.cur_embed_h.repeat(q, 1)])
    x = m.input_fc_x(x) + torch.cat([m.nei_embed_x.repeat(p, 1), m.cur_embed_x.repeat(q, 1)])
    mask = torch.zeros(t, t)
    if use_mask:
        mask[:, p:] = float("-inf")
    for layer in m.layers:
        mha_h = nn.MultiheadAttention(d, layer.attn_h.n_heads, batch_first=True)
        mha_h.load_state_dict(layer.attn_h.state_dict())
        mha_hx = nn.MultiheadAttention(d, layer.attn_hx.n_heads, batch_first=True)
        mha_hx.load_state_dict(layer.attn_hx.state_dict())
        nh, nx = layer.ln1_h(h), layer.ln1_x(x)
        a_h = mha_h(nh, nh, nh, attn_mask=mask, need_weights=False)[0]
        a_x = mha_hx(nh, nh, nx, attn_mask=mask, need_weights=False)[0]
        h, x = h + a_h, x + a_x
        h = h + layer.ffn_h[2](F.gelu(layer.ffn_h[0](layer.ln2_h(h))))
        x = x + layer.ffn_x[2](F.gelu(layer.ffn_x[0](layer.ln2_x(x))))
    return m.output_fc_x(x[:, p:])


def test_parameter_count_matches_spec():
    m = build_model("mateformer", (1, 32, 32))
    assert count_parameters(m) == 6_859_266  # spec §3.3, incl. the frozen H embeddings
    assert count_parameters(m, trainable_only=True) == 6_859_266 - 2 * 256
    assert not m.nei_embed_h.requires_grad and not m.cur_embed_h.requires_grad
    assert m.nei_embed_x.requires_grad and m.cur_embed_x.requires_grad
    assert all(
        float(e.detach().abs().sum()) == 0
        for e in (m.nei_embed_h, m.cur_embed_h, m.nei_embed_x, m.cur_embed_x)
    )
    assert len(m.layers) == 8 and m.layers[0].attn_h.n_heads == 4
    assert isinstance(m.layers[0].ffn_h[1], nn.GELU)


def test_equals_spec_reference_with_mask():
    m = _model()
    args = _inputs()
    with torch.no_grad():
        ours, ref = m(*args), reference_forward(m, *args)
        unmasked = reference_forward(m, *args, use_mask=False)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    assert (ours - unmasked).abs().max() > 1e-3  # the mask matters; the check can fail


def test_relative_labels_are_the_spec_network_on_anchored_labels():
    """Our default: labels relative to x_init in units of L; output = x_init + L * network."""
    m = _model(relative=True)
    m.labels.label_scale.fill_(7.0)
    nei_h, nei_x, cur_h = _inputs()
    anchor = nei_x.mean(1, keepdim=True)
    with torch.no_grad():
        ours = m(nei_h, nei_x, cur_h)
        ref = anchor + 7.0 * reference_forward(m, nei_h, (nei_x - anchor) / 7.0, cur_h)
        shifted = m(nei_h, nei_x + torch.tensor([300.0, -120.0]), cur_h)
        absolute = _model(relative=False)(nei_h, nei_x, cur_h)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    # translation-equivariant: moving every label moves the estimate by the same vector
    torch.testing.assert_close(shifted - ours, torch.tensor([300.0, -120.0]).expand_as(ours))
    assert (ours - absolute).abs().max() > 1e-2  # the two recipes differ; the check can fail


def test_fused_and_eager_attention_agree():
    m = _model()
    args = _inputs()
    with torch.no_grad():
        fused = m(*args)
        set_fused_attention(m, False)
        eager = m(*args)
    torch.testing.assert_close(fused, eager, atol=1e-4, rtol=1e-5)


def test_permutation_of_embedded_set_does_not_change_output():
    m = _model()
    nei_h, nei_x, cur_h = _inputs(p=9)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = m(nei_h, nei_x, cur_h)
        b = m(nei_h[:, perm], nei_x[:, perm], cur_h)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


def test_queries_do_not_influence_each_other():
    m = _model()
    nei_h, nei_x, cur_h = _inputs(q=4)
    with torch.no_grad():
        together = m(nei_h, nei_x, cur_h)
        alone = torch.cat([m(nei_h, nei_x, cur_h[:, j : j + 1]) for j in range(4)], 1)
        extra = torch.randn(2, 1, 1, 4, 4, 2) * 5
        more = m(nei_h, nei_x, torch.cat([cur_h, extra], 1))
        shuffled = m(nei_h, nei_x, cur_h.flip(1)).flip(1)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(more[:, :4], together, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(shuffled, together, atol=1e-4, rtol=1e-5)


def test_masks_block_query_positions_in_both_streams():
    """Neighbour tokens never see query tokens and no token sees a query token (incl. itself):
    spied keys/values of every attention are exactly the P embedded tokens."""
    m = _model()
    nei_h, nei_x, cur_h = _inputs(p=5, q=3)
    seen = []
    orig = MultiheadAttention.forward

    def spy(self, query, key, value, is_causal=False):
        seen.append((query.shape[1], key.shape[1], value.shape[1], is_causal))
        return orig(self, query, key, value, is_causal)

    MultiheadAttention.forward = spy
    try:
        with torch.no_grad():
            m(nei_h, nei_x, cur_h)
    finally:
        MultiheadAttention.forward = orig
    assert seen == [(8, 5, 5, False)] * (2 * len(m.layers))
    # behaviourally: a query's own CSI cannot reach it through the x-stream values, it only
    # re-weights neighbours, so with a single neighbour the output ignores the query's CSI
    with torch.no_grad():
        one = m(nei_h[:, :1], nei_x[:, :1], cur_h)
    torch.testing.assert_close(one[:, 0], one[:, 1], atol=1e-4, rtol=1e-5)


def test_output_never_sees_absolute_h_features():
    """H only supplies mixing weights, never features, to the x stream: when all embedded
    labels are equal, the output does not depend on any CSI."""
    m = _model()
    nei_h, _, cur_h = _inputs(p=4, q=2)
    same_x = torch.tensor([12.0, -7.0]).expand(2, 4, 2)
    with torch.no_grad():
        a = m(nei_h, same_x, cur_h)
        b = m(nei_h * 3 + 1, same_x, cur_h * -2)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


def test_training_loss_draws_p_q_and_backpropagates():
    import numpy as np

    m = Mateformer(**SMALL, p_range=(2, 5), q_range=(1, 3))
    seq_h, seq_x = torch.randn(3, 6, 1, 4, 4, 2), torch.randn(3, 6, 2)
    shapes = []
    orig = Mateformer.forward

    def spy(self, nei_h, nei_x, cur_h):
        shapes.append((nei_h.shape[1], cur_h.shape[1]))
        return orig(self, nei_h, nei_x, cur_h)

    Mateformer.forward = spy
    try:
        rng = np.random.default_rng(0)
        for _ in range(40):
            loss = m.training_loss(seq_h, seq_x, rng)
    finally:
        Mateformer.forward = orig
    ps, qs = {s[0] for s in shapes}, {s[1] for s in shapes}
    assert ps == {2, 3, 4, 5} and qs == {1, 2, 3}
    loss.backward()
    assert m.nei_embed_h.grad is None and m.cur_embed_x.grad is not None


def test_bf16_autocast_runs_h_stream_in_bf16_and_x_stream_in_fp32():
    """Precision policy: absolute metres (here ~500 m) must not pass through bf16."""
    dtypes = {}
    errs = {}
    nei_h, _, cur_h = _inputs(p=16)
    nei_x = torch.tensor([480.0, -230.0]) + 3 * torch.rand(
        2, 16, 2, generator=torch.Generator().manual_seed(0)
    )
    for x_fp32 in (True, False):
        m = _model(x_fp32=x_fp32)
        for name in ("input_fc_h", "input_fc_x", "output_fc_x"):
            getattr(m, name).register_forward_hook(
                lambda mod, i, o, name=name, f=x_fp32: dtypes.__setitem__((f, name), o.dtype)
            )
        for name in ("attn_h", "attn_hx"):
            getattr(m.layers[0], name).register_forward_hook(
                lambda mod, i, o, name=name, f=x_fp32: dtypes.__setitem__((f, name), o.dtype)
            )
        with torch.no_grad():
            ref = m(nei_h, nei_x, cur_h)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = m(nei_h, nei_x, cur_h)
        assert low.dtype == torch.float32
        errs[x_fp32] = (low - ref).abs().max().item()
    bf16, fp32 = torch.bfloat16, torch.float32
    assert dtypes[(True, "input_fc_h")] == bf16 and dtypes[(True, "attn_h")] == bf16
    assert dtypes[(True, "input_fc_x")] == fp32 and dtypes[(True, "attn_hx")] == fp32
    assert dtypes[(True, "output_fc_x")] == fp32
    assert dtypes[(False, "attn_hx")] == bf16
    assert errs[True] < 1e-3 < 1e-2 < errs[False]  # bf16 on metres costs decimetres
