package trainers

import (
	"os"
	"testing"
)

// TestMain doubles as a contract trainer: with DRIFTLINE_CONTRACT_TRAINER
// set, the test binary is the process behind the trainer contract (as
// `driftline train --contract` is), so tests drive Command through a real
// child process without a GPU or PyTorch. "unavailable" makes it exit as a
// trainer without a device does; DRIFTLINE_CONTRACT_MARK names a file it
// creates after training, so a test can tell the contract path ran.
func TestMain(m *testing.M) {
	switch os.Getenv("DRIFTLINE_CONTRACT_TRAINER") {
	case "":
		os.Exit(m.Run())
	case "unavailable":
		os.Stderr.WriteString("no CUDA device\n")
		os.Exit(ExitUnavailable)
	default:
		code := ContractMain(os.Args[1:], os.Stderr)
		if mark := os.Getenv("DRIFTLINE_CONTRACT_MARK"); mark != "" && code == ExitOK {
			if err := os.WriteFile(mark, nil, 0o644); err != nil {
				code = ExitFailed
			}
		}
		os.Exit(code)
	}
}
