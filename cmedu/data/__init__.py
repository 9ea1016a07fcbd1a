"""Image datasets: CIFAR-10 through torchvision, image folders and zips, synthetic shapes
(``images``). The 2D toys, whose exact scores are the course's ground truth, are maths and
live in ``cmedu.toys``."""
