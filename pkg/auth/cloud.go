package auth

// Cloud names a Microsoft cloud; it implies the Defender API, Entra
// authority and token audience URLs.
type Cloud string

// The clouds.
const (
	CloudPublic  Cloud = "public"
	CloudGCC     Cloud = "gcc"
	CloudGCCHigh Cloud = "gcc-high"
	CloudDoD     Cloud = "dod"
)

// CloudEndpoints are the URLs a cloud implies.
type CloudEndpoints struct {
	APIURL        string // Defender API base
	AuthorityURL  string // Entra authority host
	TokenAudience string // token resource / audience
}

var clouds = map[Cloud]CloudEndpoints{
	CloudPublic: {
		APIURL:        "https://api.security.microsoft.com",
		AuthorityURL:  "https://login.microsoftonline.com",
		TokenAudience: "https://api.securitycenter.microsoft.com",
	},
	CloudGCC: {
		APIURL:        "https://api-gcc.securitycenter.microsoft.us",
		AuthorityURL:  "https://login.microsoftonline.com",
		TokenAudience: "https://api-gcc.securitycenter.microsoft.us",
	},
	CloudGCCHigh: {
		APIURL:        "https://api-gov.securitycenter.microsoft.us",
		AuthorityURL:  "https://login.microsoftonline.us",
		TokenAudience: "https://api-gov.securitycenter.microsoft.us",
	},
	CloudDoD: {
		APIURL:        "https://api-gov.securitycenter.microsoft.us",
		AuthorityURL:  "https://login.microsoftonline.us",
		TokenAudience: "https://api-gov.securitycenter.microsoft.us",
	},
}

// Endpoints returns the URLs c implies, and false for an unknown cloud.
func (c Cloud) Endpoints() (CloudEndpoints, bool) {
	e, ok := clouds[c]
	return e, ok
}
