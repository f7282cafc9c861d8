"""``lbroute convert``: MetalLB's or PureLB's configuration as lbroute's, without moving
a single Service address.

Pure: plain dicts in (the objects of ``kubectl get -o yaml``), lbroute's objects, a
merge patch per Service and a report out; no Kubernetes client, no files. The modules:

- :mod:`~lbroute.convert.run`: one conversion, :func:`convert`;
- :mod:`~lbroute.convert.metallb` and :mod:`~lbroute.convert.purelb`: the mapping rules
  of each tool (their docstrings list them);
- :mod:`~lbroute.convert.services`: the Services' patches (annotations renamed, addresses
  pinned) and those that must be recreated;
- :mod:`~lbroute.convert.check`: the self-check, as ``lbroute validate`` and ``lbroute
  allocate`` would judge the output;
- :mod:`~lbroute.convert.output`, :mod:`~lbroute.convert.values` and
  :mod:`~lbroute.convert.report`: the objects written, values converted, findings.

Anything lbroute cannot express is an error in the report naming the source object and
field, never approximated silently.
"""

from lbroute.convert.report import Finding, Level, Report
from lbroute.convert.run import SOURCES, Conversion, convert
from lbroute.convert.services import Patched

__all__ = ["SOURCES", "Conversion", "Finding", "Level", "Patched", "Report", "convert"]
