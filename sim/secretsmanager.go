package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

type awsSecret struct {
	name     string
	arn      string
	versions []awsVersion
}

type awsVersion struct {
	id      string
	str     *string
	bin     []byte
	created time.Time
	stages  []string
}

// SetAWSSecret stores value as the new AWSCURRENT version of the Secrets
// Manager secret named name (the previous current one becomes AWSPREVIOUS)
// and returns the version ID.
func (s *Sim) SetAWSSecret(name, value string) string {
	return s.putAWS(name, awsVersion{str: &value})
}

// SetAWSSecretBinary is SetAWSSecret for a SecretBinary value.
func (s *Sim) SetAWSSecretBinary(name string, value []byte) string {
	return s.putAWS(name, awsVersion{bin: bytes.Clone(value)})
}

func (s *Sim) putAWS(name string, v awsVersion) string {
	v.id, v.created, v.stages = newGUID(), s.Now(), []string{"AWSCURRENT"}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.aws[name]
	if sec == nil {
		sec = &awsSecret{name: name, arn: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s",
			DefaultAWSRegion, DefaultAWSAccountID, name, randomSuffix())}
		s.aws[name] = sec
	}
	for i := range sec.versions {
		switch {
		case slices.Contains(sec.versions[i].stages, "AWSCURRENT"):
			sec.versions[i].stages = []string{"AWSPREVIOUS"}
		case slices.Contains(sec.versions[i].stages, "AWSPREVIOUS"):
			sec.versions[i].stages = nil
		}
	}
	sec.versions = append(sec.versions, v)
	return v.id
}

func randomSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := []byte(randomHex(6))
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:6])
}

// AWSSecretARN returns the ARN of the Secrets Manager secret name, or "".
func (s *Sim) AWSSecretARN(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec := s.aws[name]; sec != nil {
		return sec.arn
	}
	return ""
}

// DeleteAWSSecret removes the Secrets Manager secret name.
func (s *Sim) DeleteAWSSecret(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.aws, name)
}

// SetAWSAccess registers an access key ID and whether it may read secrets.
// Requests signed with an unregistered key get UnrecognizedClientException;
// a registered key that is not allowed gets AccessDeniedException.
func (s *Sim) SetAWSAccess(accessKeyID string, allowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.awsKeys[accessKeyID] = allowed
}

// findAWSLocked resolves a SecretId given as name, full ARN or partial ARN
// (without the random suffix).
func (s *Sim) findAWSLocked(id string) *awsSecret {
	if sec := s.aws[id]; sec != nil {
		return sec
	}
	for _, sec := range s.aws {
		if sec.arn == id || (strings.HasPrefix(id, "arn:") && sec.arn[:len(sec.arn)-7] == id) {
			return sec
		}
	}
	return nil
}

func awsError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	w.Write(b)
}

// AWSError returns a fault answering with a Secrets Manager error, e.g.
// AWSError(400, "DecryptionFailure", "...") or AWSError(500,
// "InternalServiceError", "...").
func AWSError(status int, errorType, message string) Fault {
	b, _ := json.Marshal(map[string]string{"__type": errorType, "message": message})
	return Fault{Status: status, Body: b, Header: http.Header{
		"X-Amzn-Errortype": {errorType}, "Content-Type": {"application/x-amz-json-1.1"},
	}}
}

// serveSecretsManager serves the JSON 1.1 protocol's GetSecretValue.
func (s *Sim) serveSecretsManager(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amzn-RequestId", newGUID())
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		awsError(w, http.StatusNotFound, "UnknownOperationException", "")
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		awsError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	akid, ok := sigV4AccessKey(auth)
	if !ok {
		awsError(w, http.StatusBadRequest, "IncompleteSignatureException",
			"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
		return
	}
	setClientID(r, akid)
	if target := r.Header.Get("X-Amz-Target"); target != "secretsmanager.GetSecretValue" {
		awsError(w, http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	s.mu.Lock()
	allowed, known := s.awsKeys[akid]
	s.mu.Unlock()
	if !known {
		awsError(w, http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	var in struct {
		SecretId     *string
		VersionId    string
		VersionStage string
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxForm)).Decode(&in); err != nil {
		awsError(w, http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected.")
		return
	}
	if in.SecretId == nil || *in.SecretId == "" {
		awsError(w, http.StatusBadRequest, "ValidationException",
			"1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
		return
	}
	id := *in.SecretId
	s.mu.Lock()
	s.stats.aws[id]++
	var (
		sec   awsSecret
		found bool
	)
	if p := s.findAWSLocked(id); p != nil {
		sec, found = *p, true
		sec.versions = slices.Clone(p.versions)
	}
	s.mu.Unlock()
	if !allowed {
		awsError(w, http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf("User: arn:aws:sts::%s:assumed-role/mdefn-lambda/mdefn "+
			"is not authorized to perform: secretsmanager:GetSecretValue on resource: %s because no identity-based policy "+
			"allows the secretsmanager:GetSecretValue action", DefaultAWSAccountID, id))
		return
	}
	if !found {
		awsError(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	stage := in.VersionStage
	if stage == "" && in.VersionId == "" {
		stage = "AWSCURRENT"
	}
	var v *awsVersion
	for i := range sec.versions {
		c := &sec.versions[i]
		if (in.VersionId == "" || c.id == in.VersionId) && (stage == "" || slices.Contains(c.stages, stage)) {
			v = c
		}
	}
	if v == nil {
		msg := "Secrets Manager can't find the specified secret value for staging label: " + stage
		if in.VersionId != "" {
			msg = "Secrets Manager can't find the specified secret value for VersionId: " + in.VersionId
		}
		awsError(w, http.StatusBadRequest, "ResourceNotFoundException", msg)
		return
	}
	out := map[string]any{
		"ARN":           sec.arn,
		"Name":          sec.name,
		"VersionId":     v.id,
		"VersionStages": v.stages,
		"CreatedDate":   float64(v.created.UnixMilli()) / 1000,
	}
	if v.str != nil {
		out["SecretString"] = *v.str
	} else {
		out["SecretBinary"] = v.bin // encoded as base64, as the JSON protocol wants
	}
	b, err := json.Marshal(out)
	if err != nil {
		awsError(w, http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side.")
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// sigV4AccessKey extracts the access key ID from a SigV4 Authorization
// header; the signature itself is not verified.
func sigV4AccessKey(h string) (string, bool) {
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != "AWS4-HMAC-SHA256" {
		return "", false
	}
	var cred string
	var signed, sig bool
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v != ""
		case "Signature":
			sig = v != ""
		}
	}
	akid, scope, ok := strings.Cut(cred, "/")
	if !ok || akid == "" || strings.Count(scope, "/") != 3 || !signed || !sig {
		return "", false
	}
	return akid, true
}
