"""The learned models of the M3PO family: the Gaussian ensemble networks, their trainer and the branched
rollouts made with them."""
