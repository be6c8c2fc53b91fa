package doctor

import (
	"os"
	"testing"

	"github.com/mdefn/mdefn/sim"
)

// testSim is the one simulator of this test process.
var testSim *sim.Sim

func TestMain(m *testing.M) {
	s, err := sim.Start(nil)
	if err != nil {
		panic(err)
	}
	testSim = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}
