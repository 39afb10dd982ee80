"""Programs as typed computational graphs: representation, ops, mutation, equivalence.

:mod:`graphs.core` is the language-independent part and imports no language; the
built-in languages, :mod:`graphs.rl_loss` and :mod:`graphs.arch`, are imported here,
so that their op sets are registered (e.g. for :func:`graphs.core.opset.get_opset`)
whenever any ``graphs`` module is.
"""

import graphs.arch  # noqa: F401
import graphs.rl_loss  # noqa: F401
