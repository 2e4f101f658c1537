"""EfficientAT's mn04_as (MobileNetV3 width 0.4, AudioSet) in tf_keras: front end, network, weights, genre map.

Weights: EfficientAT (Schmid, Koutini, Widmer, ICASSP 2023; github.com/fschmid56/EfficientAT, MIT license), 527
AudioSet classes; the architecture and front end are reimplemented here."""
from models.efficientat.log_mel import frontend
from models.efficientat.genres import zero_shot_genre_scores
from models.efficientat.network import build_mn04
from models.efficientat.weights import load_mn04_weights, weights_path

__all__ = ["build_mn04", "frontend", "load_mn04_weights", "weights_path", "zero_shot_genre_scores"]
