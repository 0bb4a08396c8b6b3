"""The space stage: a space file in, validated, and sampled into concrete config dicts.

    spaces/mlp.py --load--> Space --sample(space, suggester)--> {"model": "mlp", "layers": [...], ...}

Space files import the four dimensions from here (`Int`, `Float`, `Choice`, `Repeat`) and the
tutorials' configs (`baselines`). Nothing in this package imports TensorFlow, so loading, checking
and showing a space is instant.
"""

from search.space.checks import validate
from search.space.describe import changes, outline, summary, tree
from search.space.dimensions import Choice, Constant, Dimension, Float, Int, Repeat
from search.space.load import Space, load_space
from search.space.points import PointError, config_of
from search.space.tutorials import baselines
from search.space.visit import Suggester, Walker, count_dimensions, sample

__all__ = ["Choice", "Constant", "Dimension", "Float", "Int", "PointError", "Repeat", "Space", "Suggester", "Walker",
           "baselines", "changes", "config_of", "count_dimensions", "load_space", "outline", "sample", "summary",
           "tree", "validate"]
