"""Studies built on the engine: the paper's figures and the text / trained-estimator studies."""
