"""Baselines and ICLLoc: sizes per spec §6.2, exactness vs. PyTorch modules, causality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from loc.data import angle_delay, angle_dft
from loc.errors import ConfigError
from loc.models import ICLLoc, MFCNet, build_model, count_parameters
from loc.models.iclloc import EncoderLayer


@pytest.mark.parametrize(
    "name,count",
    [
        ("cnn", 57_796),
        ("ad_cnn", 57_796),
        ("mfcnet", 264_706),
        ("iclloc_gen", 4_775_682),
        ("iclloc_disc", 4_775_682),
    ],
)
def test_parameter_counts_match_spec(name, count):
    m = build_model(name, (1, 32, 32))
    assert count_parameters(m) == count
    assert m.kind == ("set" if name.startswith("icl") else "point")


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("resnet", (1, 32, 32))
    with pytest.raises(ConfigError, match="divisible by 8"):
        build_model("cnn", (1, 12, 32))
    with pytest.raises(ConfigError, match="bad options"):
        build_model("cnn", (1, 32, 32), depth=3)


def test_cnn_shapes_and_ad_cnn_dft():
    torch.manual_seed(0)
    h = torch.randn(3, 2, 16, 8, 2)
    cnn, ad = build_model("cnn", (2, 16, 8)), build_model("ad_cnn", (2, 16, 8))
    assert cnn(h).shape == (3, 2) and ad(h).shape == (3, 2)
    hc = h[..., 0].numpy() + 1j * h[..., 1].numpy()
    want = angle_delay(hc)
    got = ad.preprocess(h).reshape(3, 2, 2, 16, 8)  # (B, G, re/im, A, C)
    np.testing.assert_allclose(
        got[:, :, 0].numpy() + 1j * got[:, :, 1].numpy(), want, rtol=1e-4, atol=1e-5
    )
    plain = cnn.preprocess(h).reshape(3, 2, 2, 16, 8)
    torch.testing.assert_close(plain[:, :, 0], h[..., 0])  # channels = (group, re/im)


def test_models_with_their_own_angle_dft_use_the_planar_array():
    """AD_CNN, MetaLoc and the DA networks' angle-delay front-ends take the TRP array's 2-D DFT
    from build_model (the same transform as the input's, loc.transforms.angle_delay) and keep
    it in their hparams; without an array (or for the plain CNN) nothing changes."""
    torch.manual_seed(0)
    h = torch.randn(2, 1, 16, 8, 2)
    hc = h[..., 0].numpy() + 1j * h[..., 1].numpy()
    arr = (2, 8, 1)
    ad = build_model("ad_cnn", (1, 16, 8), array=arr)
    assert ad.hparams["array"] == arr
    got = ad.preprocess(h).reshape(2, 1, 2, 16, 8)
    np.testing.assert_allclose(
        got[:, :, 0].numpy() + 1j * got[:, :, 1].numpy(), angle_delay(hc, arr), atol=1e-5
    )
    assert not np.allclose(angle_delay(hc, arr), angle_delay(hc), atol=1e-3)
    assert "array" not in build_model("cnn", (1, 16, 8), array=arr).hparams
    assert "array" not in build_model("ad_cnn", (1, 16, 8)).hparams  # old checkpoints: 1-D
    for name in ("metaloc", "dcnn", "hda"):
        kw = {} if name == "metaloc" else {"padding": "same"}
        m = build_model(name, (1, 16, 8), array=arr, **kw)
        assert m.hparams["array"] == arr
        np.testing.assert_allclose(m.f_angle.numpy(), angle_dft(16, arr), atol=1e-6)


def test_mfcnet_steps_and_weights():
    m = MFCNet((1, 8, 6), hidden=16)
    w = m.step_weights
    assert w.sum().item() == pytest.approx(6.0) and torch.all(w[1:] > w[:-1])
    h = torch.randn(4, 1, 8, 6, 2)
    steps = m.forward_steps(h)
    assert steps.shape == (4, 6, 2)
    torch.testing.assert_close(m(h), steps[:, -1])
    # step k only sees subcarriers <= k (LSTM over subcarriers)
    h2 = h.clone()
    h2[:, :, :, 4:] += 1.0
    torch.testing.assert_close(m.forward_steps(h2)[:, :4], steps[:, :4])


def test_iclloc_layer_equals_pytorch_encoder_layer():
    torch.manual_seed(0)
    ours = EncoderLayer(32, 4, 64)
    ref = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, norm_first=True, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    ref.eval()
    t = torch.randn(2, 9, 32)
    mask = nn.Transformer.generate_square_subsequent_mask(9)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(t), ref(t, src_mask=mask, is_causal=True), atol=1e-5, rtol=1e-5
        )


def _icl(scheme="generative", relative=False):
    torch.manual_seed(0)
    m = ICLLoc(
        (1, 4, 4),
        d_model=32,
        depth=2,
        d_ff=64,
        max_context=6,
        min_context=2,
        scheme=scheme,
        relative=relative,
    ).eval()
    with torch.no_grad():
        m.pos_embed.normal_()
    return m


def test_iclloc_is_causal_and_queries_are_independent():
    m = _icl()
    g = torch.Generator().manual_seed(1)
    ctx_h, ctx_x = torch.randn(2, 5, 1, 4, 4, 2, generator=g), torch.randn(2, 5, 2, generator=g)
    cur = torch.randn(2, 3, 1, 4, 4, 2, generator=g)
    with torch.no_grad():
        out = m.run(m.tokens(ctx_h, ctx_x, cur[:, :1]))
        ctx_x2 = ctx_x.clone()
        ctx_x2[:, 3] += 10.0  # x_3 is token 7: earlier positions must not change
        out2 = m.run(m.tokens(ctx_h, ctx_x2, cur[:, :1]))
        torch.testing.assert_close(out[:, :7], out2[:, :7])
        assert (out[:, 7:] - out2[:, 7:]).abs().max() > 1e-4
        many = m(ctx_h, ctx_x, cur)
        one = torch.cat([m(ctx_h, ctx_x, cur[:, j : j + 1]) for j in range(3)], 1)
        torch.testing.assert_close(many, one, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(many[:, 0], out[:, -1], atol=1e-5, rtol=1e-5)
        # our default: context labels relative to their centroid (in units of L)
        rel = _icl(relative=True)
        rel.labels.label_scale.fill_(3.0)
        anchor = ctx_x.mean(1, keepdim=True)
        ref = rel.run(rel.tokens(ctx_h, (ctx_x - anchor) / 3.0, cur[:, :1]))[:, -1]
        torch.testing.assert_close(rel(ctx_h, ctx_x, cur[:, :1])[:, 0], anchor[:, 0] + 3.0 * ref)
    # the query always takes the last positional embedding, whatever the context length
    with torch.no_grad():
        m.pos_embed.zero_()
        m.pos_embed[-1] = 5.0
        t = m.tokens(ctx_h[:, :2], ctx_x[:, :2], cur[:, :1])
        m.pos_embed.zero_()
        base = m.tokens(ctx_h[:, :2], ctx_x[:, :2], cur[:, :1])
    torch.testing.assert_close(t[:, -1] - base[:, -1], torch.full((2, 32), 5.0))
    torch.testing.assert_close(t[:, :-1], base[:, :-1])
    with pytest.raises(ConfigError, match="at most 6"):
        m(torch.randn(1, 7, 1, 4, 4, 2), torch.randn(1, 7, 2), cur[:1, :1])


@pytest.mark.parametrize("scheme", ["generative", "discriminative"])
def test_iclloc_training_schemes(scheme):
    m = _icl(scheme)
    seq_h, seq_x = torch.randn(2, 7, 1, 4, 4, 2), torch.randn(2, 7, 2)
    lens = []
    orig = ICLLoc.run

    def spy(self, t):
        lens.append(t.shape[1])
        out = orig(self, t)
        lens.append(out.shape)
        return out

    ICLLoc.run = spy
    try:
        rng = np.random.default_rng(0)
        for _ in range(20):
            m.training_loss(seq_h, seq_x, rng).backward()
    finally:
        ICLLoc.run = orig
    token_lens = set(lens[0::2])
    if scheme == "generative":
        assert token_lens == {13}  # 6 pairs + the last H
    else:
        assert token_lens == {2 * c + 1 for c in range(2, 7)}  # c ~ U{2..6}
    with pytest.raises(ConfigError, match="unknown ICLLoc scheme"):
        ICLLoc((1, 4, 4), scheme="oracle")
