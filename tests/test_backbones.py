import keras
import pytest

import keras_scan
from keras_scan.backbones import taps

APPLICATIONS = {
    # name: (constructor, input shape, expected default taps)
    "ResNet50": (
        keras.applications.ResNet50,
        (224, 224, 3),
        ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out"],
    ),
    "ResNet50V2": (
        keras.applications.ResNet50V2,
        (224, 224, 3),
        ["conv2_block2_out", "conv3_block3_out", "conv4_block5_out"],
    ),
    "MobileNetV2": (
        keras.applications.MobileNetV2,
        (96, 96, 3),
        # The block outputs (24/32/96 channels), not the next block's 6x
        # expansion (144/192/576) that ends each resolution stage.
        ["block_2_add", "block_5_add", "block_12_add"],
    ),
    "MobileNetV3Small": (
        keras.applications.MobileNetV3Small,
        (96, 96, 3),
        ["expanded_conv_project_bn", "expanded_conv_2_add", "expanded_conv_7_add"],
    ),
    "EfficientNetB0": (
        keras.applications.EfficientNetB0,
        (96, 96, 3),
        ["block2b_add", "block3b_add", "block5c_add"],
    ),
    "DenseNet121": (
        keras.applications.DenseNet121,
        (96, 96, 3),
        ["pool2_conv", "pool3_conv", "pool4_conv"],
    ),
}


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_default_taps_of_applications(name):
    ctor, shape, expected = APPLICATIONS[name]
    backbone = ctor(weights=None, include_top=False, input_shape=shape)
    found = taps.default_taps(backbone)
    assert [t.name for t in found] == expected
    # One tap per resolution stage, strictly shrinking, strides 4-8-16 of the input.
    sizes = [t.spatial[0] for t in found]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert [t.reduction for t in found] == [4, 8, 16]
    assert all(t.macs > 0 for t in found)
    # The narrowest tensor at the end of each stage: no later cut point of
    # the same stage is narrower.
    points = taps.cut_points(backbone)
    for tap in found:
        later = [
            p for p in points if p.stage == tap.stage and p.position > tap.position
        ]
        assert all(p.channels >= tap.channels for p in later), tap.name
    assert [t.macs for t in found] == sorted(t.macs for t in found)
    # Never a name from Keras' global counter.
    layers = {layer.name: layer for layer in backbone.layers}
    assert not any(taps.is_counter_name(layers[t.name]) for t in found)
    # The taps really separate input from output: the suffix runs from the tap alone.
    for tap in found:
        assert backbone.get_layer(tap.name).output.shape[-1] == tap.channels


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_default_exit_heads_cost_a_small_fraction_of_the_backbone(name):
    # The head-cost rule the default exits keep on every Application
    # (measured over the registry at 64 and 128 pixels: 0.1-8.4% per head,
    # MobileNet v1's first the largest): at most 10% of the backbone's MACs
    # per head, and far below the paper's exits at the same taps.
    ctor, shape, _ = APPLICATIONS[name]
    backbone = ctor(weights=None, include_top=False, input_shape=shape)
    info = keras_scan.build(backbone, num_classes=10).exit_info
    full = info[-1]["standalone_macs"]
    heads = [e["head_macs"] / full for e in info[:-1]]
    assert all(0 < h <= 0.10 for h in heads), heads
    paper = keras_scan.build(backbone, num_classes=10, head="scan", attention="scan")
    paper_heads = [e["head_macs"] / full for e in paper.exit_info[:-1]]
    assert all(5 * h < p for h, p in zip(heads, paper_heads)), (heads, paper_heads)


def test_counter_names_are_never_taps_in_mobilenet_v3():
    # Build twice: the counter names differ, the default taps must not.
    a = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, input_shape=(96, 96, 3)
    )
    b = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, input_shape=(96, 96, 3)
    )
    assert [t.name for t in taps.default_taps(a)] == [
        t.name for t in taps.default_taps(b)
    ]


def test_cifar_resnet_structure_and_taps():
    for depth, blocks in [(18, 8), (34, 16), (50, 16)]:
        model = keras_scan.backbones.cifar_resnet(
            depth, width=8, input_shape=(32, 32, 3)
        )
        outs = [layer.name for layer in model.layers if layer.name.endswith("_out")]
        assert len(outs) == blocks
        assert model.output.shape[1:3] == (4, 4)
    model = keras_scan.backbones.cifar_resnet(18, width=16)
    found = taps.default_taps(model)
    assert [t.name for t in found] == [
        "stage1_block2_out",
        "stage2_block2_out",
        "stage3_block2_out",
    ]
    assert [(t.channels, t.reduction) for t in found] == [(16, 1), (32, 2), (64, 4)]
    # No max-pool and a 3x3 stem: the stem keeps the full resolution.
    assert model.get_layer("stem_conv").kernel.shape[:2] == (3, 3)
    assert not any(
        isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers
    )
    with_top = keras_scan.backbones.cifar_resnet(18, width=8, num_classes=7)
    assert with_top.output.shape[-1] == 7


def test_cut_points_exclude_tensors_inside_residual_blocks():
    model = keras_scan.backbones.cifar_resnet(18, width=8)
    names = {t.name for t in taps.cut_points(model)}
    assert "stage2_block1_out" in names
    assert "stage2_block1_1_relu" not in names  # the shortcut bypasses it
    assert "stage2_block1_0_bn" not in names


def test_exits_by_int_spread_by_macs():
    model = keras_scan.backbones.cifar_resnet(18, width=8)
    found = taps.resolve_exits(model, 3)
    total = taps.feature_map(model).macs
    assert len(found) == 3
    for j, tap in enumerate(found, start=1):
        assert abs(tap.macs / total - j / 4) < 0.15
    assert [
        t.name
        for t in taps.resolve_exits(model, ["stage3_block1_out", "stage1_block1_out"])
    ] == [
        "stage1_block1_out",
        "stage3_block1_out",
    ]


def test_bad_exits():
    model = keras_scan.backbones.cifar_resnet(18, width=8)
    with pytest.raises(ValueError, match="no layer is named 'nope'"):
        taps.resolve_exits(model, ["nope"])
    with pytest.raises(ValueError, match="not"):
        taps.resolve_exits(model, ["stage2_block1_1_relu"])
    with pytest.raises(ValueError, match="exits=0"):
        taps.resolve_exits(model, 0)
    with pytest.raises(ValueError, match="repeat"):
        taps.resolve_exits(model, ["stage1_block1_out", "stage1_block1_out"])
    with pytest.raises(TypeError, match="exits="):
        taps.resolve_exits(model, "stage1_block1_out")


def test_bad_cifar_resnet_arguments():
    with pytest.raises(ValueError, match="depth=19"):
        keras_scan.backbones.cifar_resnet(19)
    with pytest.raises(ValueError, match="input_shape"):
        keras_scan.backbones.cifar_resnet(18, input_shape=(4, 4, 3))


def test_cut_points_unchanged_after_building_stage_models():
    # Stage sub-models call the backbone's layers again (new inbound nodes); the
    # backbone's own cut points must not change.
    backbone = keras_scan.backbones.cifar_resnet(18, width=8)
    before = [t.name for t in taps.cut_points(backbone)]
    model = keras_scan.build(backbone, 10)
    model.stage_models()
    assert [t.name for t in taps.cut_points(model.backbone)] == before
    assert len(before) == 20
