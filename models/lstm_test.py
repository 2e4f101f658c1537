"""The recurrent family: MSD_musicnn's front and mid end as a pretrained front end, a bidirectional LSTM head."""
import numpy as np
import tf_keras as keras

from config.settings import GENRES, PipelineConfig, TrainConfig
from models import lstm, musicnn, registry
from models.musicnn_weights import read_checkpoint
from tests.testkit.model_checks import assert_checkpoint_loaded, loss_before_after, rhythmic_batch

SHAPE = (musicnn.FRAMES, musicnn.MELS)  # musicnn's input: 3 s at 16 kHz, hop 256, 96 mels


def test_contract_shapes_names_and_the_pretrained_front_end():
    model = lstm.build_lstm(SHAPE, len(GENRES), TrainConfig())
    assert model.name == "lstm" and model.input_names == ["log_mel"]
    assert model.input_shape == (None, *SHAPE) and model.output_shape == (None, len(GENRES))
    head = model.layers[-1]
    assert head.layers[-1].name == "probabilities"
    recurrent = head.get_layer("lstm")
    assert isinstance(recurrent.forward_layer, keras.layers.LSTM) and recurrent.forward_layer.units == lstm.UNITS
    steps = (musicnn.FRAMES // lstm.STEP_FRAMES, 753)  # 5 steps of the mid end's 753 channels
    assert head.input_shape == (None, *steps)
    assert_checkpoint_loaded(model, musicnn.checkpoint_scopes(), read_checkpoint(musicnn.CHECKPOINT))
    body, split_head = registry.split_backbone(model)
    assert body.output_shape == (None, *steps) and split_head.output_shape == (None, len(GENRES))
    probs = model.predict(np.random.default_rng(0).uniform(0, 3, (3, *SHAPE)).astype("f"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_preset_trains_the_head_alone_on_musicnns_features():
    config = PipelineConfig().with_model("lstm")
    assert registry.has_pretrained_backbone(config) and registry.needs_input_stats(config)
    assert config.train.epochs <= config.train.frozen_epochs  # no fine-tuning phase
    assert config.train.class_balance == 0.0  # unweighted loss (docs/model-selection.md, "LSTM")
    assert config.features == PipelineConfig().with_model("musicnn").features
    assert config.audio.sample_rate == 16000


def test_head_learns_on_the_frozen_front_end_outputs():
    """As the trainer's first phase: the front end runs once, the recurrent head learns on its outputs."""
    keras.utils.set_random_seed(0)
    model = lstm.build_lstm(SHAPE, len(GENRES), TrainConfig())
    registry.set_backbone_trainable(model, False)
    assert model.trainable_weights and all(not w.name.startswith(musicnn.BACKBONE_PREFIX)
                                           for w in model.trainable_weights)
    x, y = rhythmic_batch(40, *SHAPE, len(GENRES))
    body, head = registry.split_backbone(model)
    before, after = loss_before_after(head, body.predict(x, verbose=0), y, epochs=10, batch_size=10)
    assert after < 0.5 * before, (before, after)
