"""What is learned: section 1.1's target functions, the Poisson problems, their sampled data, and the losses and
metrics of an ensemble's members (one copy, what the pipeline runs)."""
