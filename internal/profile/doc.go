// Package profile builds the reference distributions stored with a model
// version (schemas.Profile) and maps live values onto their bins.
//
// A schemas.FeatureProfile with inner edges e_0 < e_1 < … < e_{k-2} has k
// bins:
//
//	bin 0:   x <= e_0
//	bin i:   e_{i-1} < x <= e_i      (0 < i < k-1)
//	bin k-1: x > e_{k-2}
//
// and Fractions[i] is the share of the reference rows in bin i. Drift
// monitors count live values per bin with Bin and compare the shares with
// the reference, e.g. with monitors.PSI.
//
// Edges are chosen so that no bin is empty by construction: every edge is a
// value of the reference data, edges are strictly increasing and the last
// one is below the column's maximum. A column with at most `bins` distinct
// values (an indicator, a small count) gets one bin per distinct value; any
// other column gets edges at its quantiles, duplicates collapsed, so a
// column dominated by one value gets fewer bins than asked for.
package profile
