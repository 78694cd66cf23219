"""The networks described from the models `kaflib.models` builds (the book's architecture tables)."""

import matplotlib

matplotlib.use("Agg")

from kaflib.architecture import architecture_table, block_table, plot_residual_block, residual_blocks  # noqa: E402
from kaflib.models import build_model  # noqa: E402


def test_the_vgg_table_lists_every_layer_and_the_parameters():
    model = build_model("vgg", "relu")
    table = architecture_table(model)
    assert len(table) == len(model.layers)  # every layer but the input, then the total
    assert table["layer"].iloc[0] == "3x3 conv, 32 filters" and "dropout 0.2" in set(table["layer"])
    assert table["parameters"].iloc[-1] == model.count_params() == table["parameters"].iloc[:-1].sum()


def test_the_resnet20_has_nine_blocks_two_with_a_strided_conv_shortcut():
    model = build_model("resnet20", "kaf")
    blocks = residual_blocks(model)
    assert len(blocks) == 9 and [b["shortcut"] is not None for b in blocks].count(True) == 2
    table = block_table(model)
    assert table["stage"].iloc[0].startswith("stem") and table["stage"].iloc[-2].startswith("head")
    assert table["parameters"].iloc[-1] == model.count_params() == table["parameters"].iloc[:-1].sum()
    assert "shortcut 3x3 conv, 32 filters, stride 2" in table["stage"].iloc[4]
    fig = plot_residual_block(model, block=3)
    assert any("shortcut" in t.get_text() for t in fig.axes[0].texts)
