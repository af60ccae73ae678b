import sys

from keras_mtsa.serving.cli import main

sys.exit(main())
