package atp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"time"

	"github.com/mdefn/mdefn/pkg/atp"
	"golang.org/x/oauth2"
)

// fakeDefender stands in for the Defender API so the examples run offline.
func fakeDefender() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts", func(w http.ResponseWriter, r *http.Request) {
		if f := r.URL.Query().Get("$filter"); f != "" {
			fmt.Fprintln(os.Stdout, "$filter:", f)
		}
		io.WriteString(w, `{"value":[{"id":"da637308392288907382_-880718168","severity":"High","status":"New","title":"Suspicious PowerShell"}]}`)
	})
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"value":[
			{"id":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","computerDnsName":"ws-01.contoso.com"},
			{"id":"7292e4b8cb74ff1cc3d8a495eb29dc8858b732f7","computerDnsName":"ws-01.contoso.com","isPotentialDuplication":true},
			{"id":"0e5bc9d7e413ddd7902c2932e418702b84d0cc0a","computerDnsName":"ws-010.contoso.com"}]}`)
	})
	mux.HandleFunc("POST /api/machines/{id}/isolate", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"2e9da30d-27f6-4208-81f2-9cd3d67893ba","type":"Isolate","scope":"Full","status":"Pending","machineId":%q}`, r.PathValue("id"))
	})
	mux.HandleFunc("POST /api/machines/{id}/unisolate", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"5c4b4ed4-5d6b-4bb5-8bd4-5b3aa6b4c2f1"}}`)
	})
	mux.HandleFunc("POST /api/machines/{id}/runAntiVirusScan", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Comment, ScanType string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"2e9da30d-27f6-4208-81f2-9cd3d67893ba","type":"RunAntiVirusScan","scope":%q,"status":"Pending","machineId":%q}`, body.ScanType, r.PathValue("id"))
	})
	mux.HandleFunc("POST /api/machines/{id}/StopAndQuarantineFile", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Comment, Sha1 string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"44cffc15-0e3d-4cbf-96aa-bf76f9b27f5e","type":"StopAndQuarantineFile","status":"Pending","machineId":%q,
			"relatedFileInfo":{"fileIdentifier":%q,"fileIdentifierType":"Sha1"}}`, r.PathValue("id"), body.Sha1)
	})
	mux.HandleFunc("GET /api/machineactions/{id}/GetPackageUri", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"@odata.context":"https://api.security.microsoft.com/api/$metadata#Edm.String",
			"value":"https://userrequests-us.securitycenter.windows.com:443/safedownload/WDATP_Investigation_Package.zip?token=c2VjcmV0"}`)
	})
	mux.HandleFunc("POST /api/machineactions/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Comment string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		fmt.Fprintf(w, `{"id":%q,"type":"CollectInvestigationPackage","status":"Cancelled","cancellationComment":%q}`, r.PathValue("id"), body.Comment)
	})
	return httptest.NewServer(mux)
}

func Example() {
	srv := fakeDefender()
	defer srv.Close()

	// In production: a token source for https://api.securitycenter.microsoft.com
	// (client credentials, managed identity...), built once per process.
	tokens := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"})
	client, err := atp.NewClient(srv.URL, tokens, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alerts, err := client.ListAlerts(ctx, &atp.ListAlertsOptions{
		Severities: []atp.Severity{atp.SeverityHigh, atp.SeverityMedium},
		Statuses:   []atp.AlertStatus{atp.AlertStatusNew},
		Top:        100,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range alerts {
		fmt.Println(a.ID, a.Severity, a.Title)
	}
	// Output:
	// $filter: (severity eq 'High' or severity eq 'Medium') and status eq 'New'
	// da637308392288907382_-880718168 High Suspicious PowerShell
}

func ExampleClient_FindMachinesByName() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)

	machines, err := client.FindMachinesByName(context.Background(), "WS-01")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range machines {
		if m.IsDuplicate() {
			continue // set merged and potential-duplicate records aside
		}
		fmt.Println(m.ID, m.ComputerDNSName)
	}
	// Output:
	// 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 ws-01.contoso.com
}

func ExampleClient_Isolate() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)
	ctx := context.Background()

	action, err := client.Isolate(ctx, "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", atp.IsolateRequest{
		Comment:       "INC0012345: ransomware alert",
		IsolationType: atp.IsolationFull,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(action.Type, action.Status, action.ID)

	_, err = client.Unisolate(ctx, "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "INC0012345: release")
	var re *atp.ResponseError
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, re.Code, atp.IsActiveRequestAlreadyExists(err))
	}
	// Output:
	// Isolate Pending 2e9da30d-27f6-4208-81f2-9cd3d67893ba
	// 400 ActiveRequestAlreadyExists true
}

func ExampleClient_RunAntiVirusScan() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)

	action, err := client.RunAntiVirusScan(context.Background(), "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", atp.ScanRequest{
		Comment:  "INC0012345: malware alert",
		ScanType: atp.ScanFull,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(action.Type, action.Scope, action.Status)
	// Output:
	// RunAntiVirusScan Full Pending
}

func ExampleClient_StopAndQuarantineFile() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)

	sha1 := "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
	if !atp.ValidSHA1(sha1) {
		fmt.Println("not a SHA-1")
		return
	}
	action, err := client.StopAndQuarantineFile(context.Background(), "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", atp.QuarantineRequest{
		Comment: "INC0012345: stop the dropper",
		Sha1:    sha1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(action.Type, action.RelatedFileInfo.FileIdentifierType, action.RelatedFileInfo.FileIdentifier)
	// Output:
	// StopAndQuarantineFile Sha1 87662bc3d60e4200ceaf7aae249d1c343f4b83c9
}

func ExampleClient_GetPackageURI() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)

	// The ID of a Succeeded CollectInvestigationPackage action.
	link, err := client.GetPackageURI(context.Background(), "69dc3630-1ccc-4342-acf3-35286eec741d")
	if err != nil {
		fmt.Println(err)
		return
	}
	// The query string is a credential: download at once, and log the link
	// without it.
	u, _ := url.Parse(link)
	u.RawQuery = ""
	fmt.Println(u)
	// Output:
	// https://userrequests-us.securitycenter.windows.com:443/safedownload/WDATP_Investigation_Package.zip
}

func ExampleClient_CancelMachineAction() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)

	action, err := client.CancelMachineAction(context.Background(), "69dc3630-1ccc-4342-acf3-35286eec741d", "INC0012345: collected by hand")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(action.Status, action.CancellationComment)
	// Output:
	// Cancelled INC0012345: collected by hand
}

func ExampleClient_StreamAlerts() {
	srv := fakeDefender()
	defer srv.Close()
	client, _ := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "example"}), nil)

	// Copy Defender's alert objects, unmodified, into another JSON document.
	enc := json.NewEncoder(os.Stdout)
	n, err := client.StreamAlerts(context.Background(), &atp.ListAlertsOptions{Top: 10}, func(raw json.RawMessage) error {
		return enc.Encode(raw)
	})
	fmt.Println(n, err)
	// Output:
	// {"id":"da637308392288907382_-880718168","severity":"High","status":"New","title":"Suspicious PowerShell"}
	// 1 <nil>
}

func ExampleODataString() {
	fmt.Println("computerDnsName eq " + atp.ODataString("o'brien-pc"))
	// Output: computerDnsName eq 'o''brien-pc'
}
