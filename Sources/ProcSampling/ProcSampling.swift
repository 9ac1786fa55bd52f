// ProcSampling
