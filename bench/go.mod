module pilotfish/bench

go 1.22
