import numpy as np
import pytest
from PIL import Image

from keras_transformer import plots
from keras_transformer.training import NoamSchedule


def test_attention_heat_map_has_a_panel_per_head(tmp_path):
    weights = np.random.default_rng(0).random((4, 3, 5))
    path = plots.plot_attention(weights, list("abcde"), ["x", "y", "z"], str(tmp_path / "a.png"))
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 50 and image.shape[1] > 200
    single = plots.plot_attention(
        weights[0], list("abcde"), ["x", "y", "z"], str(tmp_path / "b.png")
    )
    assert Image.open(single).size[0] < Image.open(path).size[0]


def test_attention_shape_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"\(heads, 2, 5\)"):
        plots.plot_attention(
            np.zeros((1, 3, 5)), list("abcde"), ["x", "y"], str(tmp_path / "a.png")
        )


def test_learning_rate_and_loss_curves(tmp_path):
    Image.open(
        plots.plot_learning_rate(NoamSchedule(64, 100), 400, str(tmp_path / "lr.png"))
    ).verify()
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,val_loss\n0,3.0,3.1\n1,2.0,2.2\n")
    assert plots.read_log(str(log))["val_loss"] == [3.1, 2.2]
    Image.open(plots.plot_loss_curves(str(log), str(tmp_path / "loss.png"))).verify()
    with pytest.raises(FileNotFoundError, match="train a run first"):
        plots.plot_loss_curves(str(tmp_path / "none.csv"), str(tmp_path / "x.png"))
    (tmp_path / "empty.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="no epochs yet"):
        plots.read_log(str(tmp_path / "empty.csv"))
