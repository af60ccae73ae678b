"""Train an MTSA sentence classifier (e.g. TREC, SST-2).

    python examples/train_classifier.py --train ../shared/data/trec/train_5500.label \
        --test ../shared/data/trec/TREC_10.label --format trec --output-dir runs/trec

`--help` lists every option; the README shows the commands and the accuracy they reached.
"""

import sys

from keras_mtsa.training import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], pair=False))
