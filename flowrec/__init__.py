"""flowrec: collaborative filtering and tensor completion trained by FlowAdam."""

__version__ = "0.1.0.dev0"
