package e2e

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/sim"
	"gopkg.in/yaml.v3"
)

// value is a template value with its CloudFormation short-form tag (!Ref,
// !GetAtt, !Sub, ...), which a plain decode would drop.
type value struct {
	Tag    string // "!Ref", "!GetAtt", ...; "" or a YAML core tag for plain values
	Scalar string // the scalar's text
}

func (v *value) UnmarshalYAML(n *yaml.Node) error {
	v.Tag, v.Scalar = n.Tag, n.Value
	return nil
}

func (v value) String() string { return strings.TrimSpace(v.Tag + " " + v.Scalar) }

// samTemplate is what the test reads of template.yaml.
type samTemplate struct {
	Transform  string `yaml:"Transform"`
	Parameters map[string]struct {
		Type          string   `yaml:"Type"`
		AllowedValues []string `yaml:"AllowedValues"`
	} `yaml:"Parameters"`
	Globals struct {
		Function struct {
			Runtime       string   `yaml:"Runtime"`
			Architectures []string `yaml:"Architectures"`
			Handler       string   `yaml:"Handler"`
			Timeout       int      `yaml:"Timeout"`
			MemorySize    int      `yaml:"MemorySize"`
			Environment   struct {
				Variables map[string]value `yaml:"Variables"`
			} `yaml:"Environment"`
		} `yaml:"Function"`
	} `yaml:"Globals"`
	Resources map[string]struct {
		Type       string            `yaml:"Type"`
		Metadata   map[string]string `yaml:"Metadata"`
		Properties samProperties     `yaml:"Properties"`
	} `yaml:"Resources"`
	Outputs map[string]struct {
		Value value `yaml:"Value"`
	} `yaml:"Outputs"`
}

// samProperties holds the properties of the resource types the template uses.
type samProperties struct {
	// AWS::Serverless::Function
	CodeURI           string      `yaml:"CodeUri"`
	Timeout           int         `yaml:"Timeout"`
	Policies          []yaml.Node `yaml:"Policies"`
	FunctionURLConfig struct {
		AuthType string `yaml:"AuthType"`
	} `yaml:"FunctionUrlConfig"`
	Events map[string]struct {
		Type       string `yaml:"Type"`
		Properties struct {
			Queue                 value    `yaml:"Queue"`
			BatchSize             int      `yaml:"BatchSize"`
			FunctionResponseTypes []string `yaml:"FunctionResponseTypes"`
		} `yaml:"Properties"`
	} `yaml:"Events"`
	// AWS::SQS::Queue
	VisibilityTimeout int `yaml:"VisibilityTimeout"`
	RedrivePolicy     struct {
		DeadLetterTargetARN value `yaml:"deadLetterTargetArn"`
		MaxReceiveCount     int   `yaml:"maxReceiveCount"`
	} `yaml:"RedrivePolicy"`
}

// samFunctions are the template's functions (logical ID <Name>Function,
// any case) and the bootstrap each builds, for every registered function.
var samFunctions = func() map[string]string {
	ids := map[string]string{"tokencheck": "TokenCheck"}
	out := map[string]string{}
	for _, name := range functions.Names() {
		id, ok := ids[name]
		if !ok {
			id = strings.ToUpper(name[:1]) + name[1:]
		}
		out[id+"Function"] = name
	}
	return out
}()

func readTemplate(t *testing.T) (samTemplate, *yaml.Node) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	var tpl samTemplate
	if err := root.Decode(&tpl); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	return tpl, &root
}

// TestTemplate checks template.yaml against the Lambda deployment rules and the deployment
// choices it documents: runtime, architecture, least-privilege policies,
// IAM-authenticated Function URLs, the isolate queue and its dead letters.
func TestTemplate(t *testing.T) {
	tpl, root := readTemplate(t)

	if tpl.Transform != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform = %q, want AWS::Serverless-2016-10-31", tpl.Transform)
	}
	g := tpl.Globals.Function
	if g.Runtime != "provided.al2023" || !slices.Equal(g.Architectures, []string{"arm64"}) || g.Handler != "bootstrap" || g.MemorySize != 128 || g.Timeout <= 0 {
		t.Errorf("Globals.Function = runtime %q, architectures %v, handler %q, memory %d, timeout %d; want provided.al2023, [arm64], bootstrap, 128, a timeout",
			g.Runtime, g.Architectures, g.Handler, g.MemorySize, g.Timeout)
	}
	for _, p := range []string{"TenantId", "ClientId", "SecretArn", "ProtectedTags", "MaxIsolationsPerHour", "DryRun", "Cloud"} {
		if _, ok := tpl.Parameters[p]; !ok {
			t.Errorf("parameter %s is missing", p)
		}
	}
	if got := tpl.Parameters["Cloud"].AllowedValues; !slices.Equal(got, []string{"public", "gcc", "gcc-high", "dod"}) {
		t.Errorf("parameter Cloud AllowedValues = %v, want the MDE_CLOUD values", got)
	}
	wantEnv := map[string]string{"MDE_TENANT_ID": "!Ref TenantId", "MDE_CLIENT_ID": "!Ref ClientId", "MDE_AWS_SECRET_ID": "!Ref SecretArn"}
	for k, want := range wantEnv {
		if got := g.Environment.Variables[k].String(); got != want {
			t.Errorf("Globals environment %s = %q, want %q", k, got, want)
		}
	}
	for k := range g.Environment.Variables {
		if !strings.HasPrefix(k, "MDE_") || slices.Contains([]string{"MDE_CLIENT_SECRET", "MDE_KEYVAULT_URL"}, k) {
			t.Errorf("Globals environment sets %s, want only MDE_* settings and no plain secret or vault", k)
		}
	}

	for name, fn := range samFunctions {
		r, ok := tpl.Resources[name]
		if !ok {
			t.Errorf("resource %s (%s) is missing", name, fn)
			continue
		}
		p := r.Properties
		if r.Type != "AWS::Serverless::Function" || r.Metadata["BuildMethod"] != "makefile" || p.CodeURI == "" {
			t.Errorf("%s = type %q, BuildMethod %q, CodeUri %q; want AWS::Serverless::Function, makefile, a CodeUri", name, r.Type, r.Metadata["BuildMethod"], p.CodeURI)
		}
		if p.FunctionURLConfig.AuthType != "AWS_IAM" {
			t.Errorf("%s FunctionUrlConfig.AuthType = %q, want AWS_IAM", name, p.FunctionURLConfig.AuthType)
		}
		// Least privilege: one policy, reading the one secret.
		if len(p.Policies) != 1 {
			t.Errorf("%s has %d policies, want exactly the scoped Secrets Manager read", name, len(p.Policies))
		}
		for _, n := range p.Policies {
			var pol map[string]map[string]value
			if err := n.Decode(&pol); err != nil {
				t.Errorf("%s policy %q is not a scoped policy template: %v", name, n.Value, err)
				continue
			}
			scope, ok := pol["AWSSecretsManagerGetSecretValuePolicy"]
			if len(pol) != 1 || !ok || len(scope) != 1 || scope["SecretArn"].String() != "!Ref SecretArn" {
				t.Errorf("%s policy = %v, want AWSSecretsManagerGetSecretValuePolicy with SecretArn !Ref SecretArn only", name, pol)
			}
		}
		url, ok := tpl.Outputs[name+"Url"]
		if !ok || url.Value.String() != "!GetAtt "+name+"Url.FunctionUrl" {
			t.Errorf("output %sUrl = %v (present %v), want !GetAtt %sUrl.FunctionUrl", name, url.Value, ok, name)
		}
	}
	for name, r := range tpl.Resources {
		if r.Type == "AWS::Serverless::Function" && samFunctions[name] == "" {
			t.Errorf("resource %s is a function the test does not know", name)
		}
	}

	// The SQS queue feeding isolate, with partial batch responses and a
	// dead-letter queue.
	iso := tpl.Resources["IsolateFunction"].Properties
	timeout := cmpOr(iso.Timeout, g.Timeout)
	var sqsEvents int
	for ename, e := range iso.Events {
		if e.Type != "SQS" {
			continue
		}
		sqsEvents++
		qname, ok := strings.CutSuffix(e.Properties.Queue.Scalar, ".Arn")
		if e.Properties.Queue.Tag != "!GetAtt" || !ok {
			t.Errorf("event %s Queue = %v, want !GetAtt <queue>.Arn", ename, e.Properties.Queue)
			continue
		}
		if !slices.Equal(e.Properties.FunctionResponseTypes, []string{"ReportBatchItemFailures"}) || e.Properties.BatchSize < 1 || e.Properties.BatchSize > 10 {
			t.Errorf("event %s = response types %v, batch size %d; want [ReportBatchItemFailures] and 1..10", ename, e.Properties.FunctionResponseTypes, e.Properties.BatchSize)
		}
		q := tpl.Resources[qname]
		if q.Type != "AWS::SQS::Queue" || q.Properties.VisibilityTimeout < 6*timeout {
			t.Errorf("queue %s = type %q, VisibilityTimeout %d; want AWS::SQS::Queue, at least 6 x %d", qname, q.Type, q.Properties.VisibilityTimeout, timeout)
		}
		rp := q.Properties.RedrivePolicy
		dlq, ok := strings.CutSuffix(rp.DeadLetterTargetARN.Scalar, ".Arn")
		if rp.MaxReceiveCount != 5 || rp.DeadLetterTargetARN.Tag != "!GetAtt" || !ok || tpl.Resources[dlq].Type != "AWS::SQS::Queue" {
			t.Errorf("queue %s RedrivePolicy = %+v, want maxReceiveCount 5 and a dead-letter queue of the template", qname, rp)
		}
		var urlOut bool
		for _, o := range tpl.Outputs {
			urlOut = urlOut || o.Value.String() == "!Ref "+qname
		}
		if !urlOut {
			t.Errorf("no output gives the URL of queue %s (!Ref %s)", qname, qname)
		}
	}
	if sqsEvents != 1 {
		t.Errorf("IsolateFunction has %d SQS events, want 1", sqsEvents)
	}

	checkReferences(t, root, tpl)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// checkReferences checks that every !Ref names a parameter or resource and
// every !GetAtt a resource (or the Function URL SAM generates for one).
func checkReferences(t *testing.T, n *yaml.Node, tpl samTemplate) {
	t.Helper()
	known := func(name string) bool {
		if _, ok := tpl.Resources[name]; ok {
			return true
		}
		if fn, ok := strings.CutSuffix(name, "Url"); ok && samFunctions[fn] != "" {
			return true
		}
		return strings.HasPrefix(name, "AWS::")
	}
	switch n.Tag {
	case "!Ref":
		if _, ok := tpl.Parameters[n.Value]; !ok && !known(n.Value) {
			t.Errorf("line %d: !Ref %s names nothing in the template", n.Line, n.Value)
		}
	case "!GetAtt":
		if res, _, _ := strings.Cut(n.Value, "."); !known(res) {
			t.Errorf("line %d: !GetAtt %s names no resource", n.Line, n.Value)
		}
	}
	for _, c := range n.Content {
		checkReferences(t, c, tpl)
	}
}

// TestTemplateBuildTargets checks that `make build-<LogicalId>` (what sam
// build runs) builds each function's bootstrap as Lambda needs it.
func TestTemplateBuildTargets(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	artifacts := t.TempDir()
	for name, fn := range samFunctions {
		cmd := exec.Command(mk, "-n", "-C", "..", "build-"+name, "ARTIFACTS_DIR="+artifacts)
		cmd.Env = withoutMakeFlags(os.Environ()) // a parent make's flags and overrides stay out
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("make -n build-%s: %v\n%s", name, err, out)
			continue
		}
		for _, want := range []string{
			"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "-tags lambda.norpc", "-trimpath", "-s -w",
			"-o " + filepath.Join(artifacts, "bootstrap"), "./cmd/bootstrap/" + fn,
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("make -n build-%s does not run %q:\n%s", name, want, out)
			}
		}
	}
}

// withoutMakeFlags drops the variables a parent make passes to its children.
func withoutMakeFlags(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "MAKEFLAGS" || k == "MFLAGS" || k == "MAKELEVEL" || k == "MAKEOVERRIDES"
	})
}

// TestEachBuildLinksOneCloud: the Lambda bootstraps leave the Azure SDK out
// and the Azure executable the AWS SDK (their size, docs/benchmarks.md); a
// deployment configured for the other cloud's secret store stops at once
// with one line saying where to keep the credential instead.
func TestEachBuildLinksOneCloud(t *testing.T) {
	dist := distDir(t)
	for _, tc := range []struct {
		name, exe string
		env       []string
		want      string
	}{
		{"lambda with Key Vault", filepath.Join(dist, "lambda", "alerts", "bootstrap"),
			[]string{"MDE_KEYVAULT_URL=https://contoso.vault.azure.net", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9"}, "MDE_AWS_SECRET_ID"},
		{"lambda with managed identity", filepath.Join(dist, "lambda", "alerts", "bootstrap"),
			[]string{"MDE_AUTH=managed-identity", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9"}, "without the Azure SDK"},
		{"azure with Secrets Manager", filepath.Join(dist, "azure", "mdefn"),
			[]string{"MDE_AWS_SECRET_ID=mde/client-secret", "FUNCTIONS_CUSTOMHANDLER_PORT=0"}, "MDE_KEYVAULT_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.exe)
			cmd.Env = append(baseEnv(), append([]string{"MDE_TENANT_ID=" + sim.DefaultTenantID, "MDE_CLIENT_ID=" + sim.DefaultClientID}, tc.env...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("exited 0, want non-zero")
				}
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running after 5 s, want a quick non-zero exit")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr = %q, want one line naming %s", stderr.String(), tc.want)
			}
		})
	}
}

// TestDeployableSizes keeps every built deployable within issue 15's
// bounds as functions are added: 12 MB stripped and 5 MB zipped (10^6
// bytes). make test builds for this machine's architecture; make bench
// reports both.
func TestDeployableSizes(t *testing.T) {
	dist := distDir(t)
	exes, _ := filepath.Glob(filepath.Join(dist, "lambda", "*", "bootstrap"))
	exes = append(exes, filepath.Join(dist, "azure", "mdefn"))
	if len(exes) < 2 {
		t.Fatalf("no bootstraps in %s", dist)
	}
	for _, exe := range exes {
		data, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		var zipped bytes.Buffer
		zw := zip.NewWriter(&zipped)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: filepath.Base(exe), Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		zw.Close()
		rel, _ := filepath.Rel(dist, exe)
		if len(data) > 12_000_000 || zipped.Len() > 5_000_000 {
			t.Errorf("%s: %d bytes, %d zipped; want at most 12 MB and 5 MB", rel, len(data), zipped.Len())
		}
	}
}
