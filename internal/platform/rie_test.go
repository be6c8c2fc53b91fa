package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLambdaRuntimeEmulator runs a real bootstrap (testdata/lambdamain) under
// the AWS Lambda Runtime Interface Emulator, when aws-lambda-rie is on PATH
// or in $HOME/go/bin: Run detects Lambda, direct invokes return the function's
// JSON, and a failure reaches the caller with the contract code as errorType.
func TestLambdaRuntimeEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	rie, err := exec.LookPath("aws-lambda-rie")
	if err != nil {
		home, _ := os.UserHomeDir()
		rie = filepath.Join(home, "go", "bin", "aws-lambda-rie")
		if _, err := os.Stat(rie); err != nil {
			t.Skip("aws-lambda-rie not installed")
		}
	}
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bootstrap, "./testdata/lambdamain")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	addr, apiAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, bootstrap)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	invoke := func(payload string) (int, string, string) {
		url := "http://" + addr + "/2015-03-31/functions/function/invocations"
		for range 100 {
			resp, err := http.Post(url, "application/json", strings.NewReader(payload))
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), string(b)
		}
		t.Fatalf("emulator never answered; logs:\n%s", logs.String())
		return 0, "", ""
	}

	_, fnErr, body := invoke(`{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"e2e"}`)
	var ok struct {
		Request map[string]any `json:"request"`
		Trigger string         `json:"trigger"`
		ID      string         `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &ok); err != nil || fnErr != "" {
		t.Fatalf("direct invoke = %q (function error %q), want the function's JSON; logs:\n%s", body, fnErr, logs.String())
	}
	if ok.Trigger != "direct" || ok.ID == "" || ok.Request["comment"] != "e2e" {
		t.Errorf("direct invoke answer = %+v, want trigger direct, a request ID and the request", ok)
	}

	_, _, body = invoke(`{"fail":true}`)
	var failure struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal([]byte(body), &failure); err != nil {
		t.Fatalf("failed invoke = %q, want a Lambda error payload", body)
	}
	if failure.ErrorType != "not_found" || failure.ErrorMessage != "no such device" {
		t.Errorf("failed invoke = %+v, want errorType not_found, errorMessage %q", failure, "no such device")
	}
}
