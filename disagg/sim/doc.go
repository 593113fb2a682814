// Package sim predicts, at cluster scale and without a GPU, how evenly core
// attention is spread when global batches sampled from a document-length
// distribution are trained with plain packing, the baselines of the DistCA
// paper, or CAD (the scheduler of package disagg), from cost models alone.
package sim
