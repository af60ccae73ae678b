"""Training as a library: a typed config, `train(config)`, and the command line over them.

```python
from keras_mtsa import training

config = training.TrainingConfig(
    data=training.DataConfig(train="train.txt", test="test.txt", format="labeled-lines"),
    model=training.ModelConfig(embeddings="glove.840B.300d.txt.gz"),
    optimizer=training.OptimizerConfig(epochs=10),
)
result = training.train(config)
```

Modules, one job each: `config` (the dataclasses and their rules), `run_directory` (the run's files
and the resume protocol), `trainer` (preprocessing, datasets, model and fits), `job`
(`train`, `train_pair`), `cli` (the flags), `callbacks`, `environment` (optional packages,
determinism, versions) and `plotting`.
"""

from keras_mtsa.training.callbacks import resumable_early_stopping
from keras_mtsa.training.cli import build_argument_parser
from keras_mtsa.training.cli import config_from_argv
from keras_mtsa.training.cli import main
from keras_mtsa.training.cli import main_pair
from keras_mtsa.training.config import ConfigError
from keras_mtsa.training.config import DataConfig
from keras_mtsa.training.config import ModelConfig
from keras_mtsa.training.config import OptimizerConfig
from keras_mtsa.training.config import RunConfig
from keras_mtsa.training.config import TextConfig
from keras_mtsa.training.config import TrainingConfig
from keras_mtsa.training.environment import OptionalDependencyError
from keras_mtsa.training.job import TrainingResult
from keras_mtsa.training.job import train
from keras_mtsa.training.job import train_pair
from keras_mtsa.training.plotting import plot_learning_curves

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "OptionalDependencyError",
    "RunConfig",
    "TextConfig",
    "TrainingConfig",
    "TrainingResult",
    "build_argument_parser",
    "config_from_argv",
    "main",
    "main_pair",
    "plot_learning_curves",
    "resumable_early_stopping",
    "train",
    "train_pair",
]
