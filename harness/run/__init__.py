"""Running the recipe and caching it: run inputs and keys, the two stages, published run directories."""
