package main

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mdefn/mdefn/functions"
)

// binSize is the size of one deployable executable.
type binSize struct {
	name     string // "amd64/azure/mdefn", "arm64/lambda/alerts/bootstrap", ...
	goarch   string
	stripped int64 // bytes, built as `make build` does (-s -w -trimpath)
	zipped   int64 // bytes of a zip holding only the executable (deflate)
}

// binaries are the built executables.
type binaries struct {
	run   string // `mdefn` for this machine, the one measured running
	sizes []binSize
}

// The build tags of `make build` (Makefile LAMBDA_TAGS, AZURE_TAGS): each
// deployable links one cloud's SDK.
const (
	lambdaTags = "lambda.norpc,mdefn_noazure"
	azureTags  = "lambda.norpc,mdefn_noaws"
)

// archs are the architectures every deployable is measured for.
var archs = []string{"amd64", "arm64"}

// buildAll builds what `make build` builds, with its flags and tags, for
// both architectures (every registered function's bootstrap), plus `mdefn`
// for this machine.
func buildAll(dir string) (*binaries, error) {
	b := &binaries{}
	for _, arch := range archs {
		az, err := build(dir, arch+"/azure/mdefn", "./cmd/mdefn", arch, azureTags)
		if err != nil {
			return nil, err
		}
		b.sizes = append(b.sizes, az)
		for _, spec := range functions.All {
			bs, err := build(dir, arch+"/lambda/"+spec.Name+"/bootstrap", "./cmd/bootstrap/"+spec.Name, arch, lambdaTags)
			if err != nil {
				return nil, err
			}
			b.sizes = append(b.sizes, bs)
		}
	}
	b.run = filepath.Join(dir, "amd64", "azure", "mdefn")
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		if _, err := build(dir, "host/mdefn", "./cmd/mdefn", runtime.GOARCH, azureTags); err != nil {
			return nil, err
		}
		b.run = filepath.Join(dir, "host", "mdefn")
	}
	return b, nil
}

func build(dir, name, pkg, goarch, tags string) (binSize, error) {
	out := filepath.Join(dir, filepath.FromSlash(name))
	args := []string{"build", "-trimpath", "-ldflags", "-s -w"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "-o", out, pkg)
	cmd := exec.Command("go", args...)
	goos := "linux"
	if strings.HasPrefix(name, "host/") {
		goos = runtime.GOOS
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return binSize{}, fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	fi, err := os.Stat(out)
	if err != nil {
		return binSize{}, err
	}
	z, err := zipSize(out)
	if err != nil {
		return binSize{}, err
	}
	return binSize{name: name, goarch: goarch, stripped: fi.Size(), zipped: z}, nil
}

// zipSize is the size of a zip archive holding only the file at path, as
// `make package` makes it.
func zipSize(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: filepath.Base(path), Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(data); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(buf.Len()), nil
}
