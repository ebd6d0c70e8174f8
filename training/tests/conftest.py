import sys
from pathlib import Path

# make `twin_train` importable whichever directory pytest runs from
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
