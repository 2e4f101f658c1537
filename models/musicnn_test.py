"""musicnn's MSD_musicnn in Keras: every pretrained front- and mid-end tensor loaded, the same embedding as
musicnn's own TF1 graph, and the body frozen by the trainer's hook.

That the head learns on the frozen body is shown end to end, on held-out tracks, by
tests/test_pretrained_families_e2e.py (musicnn's preset); a toy fit here would cost CI 40 s for less."""
import numpy as np
import pytest
import tf_keras as keras

from config.settings import GENRES, PipelineConfig, TrainConfig
from models import musicnn, registry
from models.musicnn_weights import read_checkpoint
from tests.testkit.model_checks import assert_checkpoint_loaded, log_mel_like, musicnn_tf1_outputs

SHAPE = (musicnn.FRAMES, musicnn.MELS)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return musicnn.build_musicnn(SHAPE, len(GENRES), TrainConfig())


@pytest.fixture(scope="module")
def tensors() -> dict:
    return read_checkpoint(musicnn.CHECKPOINT)



def test_preset_shape_and_contract(model):
    config = PipelineConfig().with_model("musicnn")
    assert (config.features.frames, config.features.n_mels) == SHAPE
    assert config.features == PipelineConfig().with_model("vgg").features  # one Transform output serves both
    assert registry.has_pretrained_backbone(config) and registry.needs_input_stats(config)
    assert model.input_names == ["log_mel"]
    assert model.output_shape == (None, len(GENRES))
    assert model.get_layer(musicnn.EMBEDDING).output_shape == (None, 561 + 3 * 64)


def test_every_body_tensor_is_loaded_unchanged(model, tensors):
    # musicnn's back end (its last batch norms and dense layers, trained for 50 tags) is not used.
    back_end = {"batch_normalization_9", "batch_normalization_10", "dense", "dense_1"}
    body = {key for key in tensors if key.split("/")[0] not in back_end}
    assert len(body) == 9 * 4 + 8 * 2  # nine batch norms, eight convolutions
    assert assert_checkpoint_loaded(model, musicnn.checkpoint_scopes(), tensors) == body


def test_embedding_reproduces_musicnn_tf1_graph(model, tmp_path):
    x = log_mel_like(3, SHAPE, seed=1)
    # build_musicnn returns logits, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate
    want = musicnn_tf1_outputs(musicnn.CHECKPOINT, x, tmp_path)[6]
    got = keras.Model(model.input, model.get_layer(musicnn.EMBEDDING).output).predict(x, verbose=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0.1  # the comparison is over non-trivial activations


def test_input_stats_undo_the_transform_zscore(model):
    raw = log_mel_like(2, SHAPE, seed=2)
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1)) + 0.1
    with_stats = musicnn.build_musicnn(SHAPE, len(GENRES), TrainConfig(), input_stats=(mean, std))
    embed = [keras.Model(m.input, m.get_layer(musicnn.EMBEDDING).output) for m in (model, with_stats)]
    np.testing.assert_allclose(embed[1].predict((raw - mean) / std, verbose=0), embed[0].predict(raw, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_rejects_other_input_shapes():
    with pytest.raises(ValueError, match="187, 96"):
        musicnn.build_musicnn((130, 128), len(GENRES), TrainConfig(), pretrained=False)


def test_freeze_and_unfreeze_backbone():
    model = musicnn.build_musicnn(SHAPE, len(GENRES), TrainConfig(), pretrained=False)
    head = len(model.get_layer("probabilities").trainable_weights) + len(model.get_layer("head_bn").trainable_weights)
    registry.set_backbone_trainable(model, False)
    assert len(model.trainable_weights) == head
    registry.set_backbone_trainable(model, True)
    assert len(model.trainable_weights) == head + 8 * 2  # conv kernels and biases; BN stays frozen
    body, head_model = registry.split_backbone(model)
    assert body.output_shape == (None, 753) and head_model.output_shape == (None, len(GENRES))
