import sys

from data_prep.scenes import main

sys.exit(main())
