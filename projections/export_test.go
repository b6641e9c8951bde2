package projections

// SetCarryLimit sets how many rows an Applier carries from batch to batch (see Applier.carry)
// until the returned function restores it.
func SetCarryLimit(n int) (restore func()) {
	old := carryLimit
	carryLimit = n
	return func() { carryLimit = old }
}
