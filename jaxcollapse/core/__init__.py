"""The model of one chain: truths, data regimes, samplers, metrics and the kernels (count, resample, trained
estimators, autoregressive text) behind one interface. Imports nothing of the layers above."""
