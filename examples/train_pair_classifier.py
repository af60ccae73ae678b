"""Train an MTSA sentence-pair (NLI) classifier with one shared encoder (e.g. SICK, SNLI).

    python examples/train_pair_classifier.py --train ../shared/data/sick/SICK_train.txt \
        --dev ../shared/data/sick/SICK_trial.txt \
        --test ../shared/data/sick/SICK_test_annotated.txt --format sick --output-dir runs/sick

`--help` lists every option; the README shows the commands and the accuracy they reached.
"""

import sys

from keras_mtsa.training import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], pair=True))
