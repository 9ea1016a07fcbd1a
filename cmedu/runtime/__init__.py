"""Where and how code runs: the device and autocast (``device``), progress bars that also
work in stored notebooks (``progress``), and the processes of a ``torchrun`` job
(``distributed``). Nothing here is maths; every other layer may import it."""
