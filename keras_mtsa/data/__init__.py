"""Dataset readers, tensorflow-text preprocessing, length buckets and tf.data input pipelines."""

from keras_mtsa.data.buckets import choose_bucket_boundaries
from keras_mtsa.data.pipeline import make_classification_dataset
from keras_mtsa.data.pipeline import make_pair_dataset
from keras_mtsa.data.preprocessing import PAD_ID
from keras_mtsa.data.preprocessing import RESERVED_TOKENS
from keras_mtsa.data.preprocessing import UNK_ID
from keras_mtsa.data.preprocessing import TextPreprocessor
from keras_mtsa.data.preprocessing import build_vocabulary
from keras_mtsa.data.preprocessing import build_wordpiece_vocabulary
from keras_mtsa.data.preprocessing import compute_max_length
from keras_mtsa.data.preprocessing import fitting_max_length
from keras_mtsa.data.preprocessing import read_vocabulary
from keras_mtsa.data.preprocessing import tokenize
from keras_mtsa.data.preprocessing import write_vocabulary
from keras_mtsa.data.readers import FORMATS
from keras_mtsa.data.readers import DataFormatError
from keras_mtsa.data.readers import TextClassificationData
from keras_mtsa.data.readers import TextPairData
from keras_mtsa.data.readers import join_splits
from keras_mtsa.data.readers import read_dataset
from keras_mtsa.data.readers import read_delimited
from keras_mtsa.data.readers import read_labeled_lines
from keras_mtsa.data.readers import read_sick
from keras_mtsa.data.readers import read_snli
from keras_mtsa.data.readers import read_trec
from keras_mtsa.data.readers import split_dev
from keras_mtsa.data.word_vectors import EmbeddingRows
from keras_mtsa.data.word_vectors import WordVectors
from keras_mtsa.data.word_vectors import embedding_rows
from keras_mtsa.data.word_vectors import peek_word_vector_dim
from keras_mtsa.data.word_vectors import read_word_vectors

__all__ = [
    "FORMATS",
    "PAD_ID",
    "RESERVED_TOKENS",
    "UNK_ID",
    "DataFormatError",
    "EmbeddingRows",
    "TextClassificationData",
    "TextPairData",
    "TextPreprocessor",
    "WordVectors",
    "build_vocabulary",
    "build_wordpiece_vocabulary",
    "choose_bucket_boundaries",
    "compute_max_length",
    "embedding_rows",
    "fitting_max_length",
    "join_splits",
    "make_classification_dataset",
    "make_pair_dataset",
    "peek_word_vector_dim",
    "read_dataset",
    "read_delimited",
    "read_labeled_lines",
    "read_sick",
    "read_snli",
    "read_trec",
    "read_vocabulary",
    "read_word_vectors",
    "split_dev",
    "tokenize",
    "write_vocabulary",
]
