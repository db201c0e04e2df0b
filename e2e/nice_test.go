package e2e

// directordNice is the nice value deploy/systemd/directord.service runs
// directord at; the lab starts the pair's directors with it, and
// TestLabRunsDirectordAsItsUnitDoes keeps the two the same.
const directordNice = -10
