package indicators

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mdefn/mdefn/pkg/atp"
)

// NeverBlock is the parsed MDE_INDICATOR_NEVER_BLOCK: what no indicator
// may block. The zero value and nil protect nothing.
type NeverBlock struct {
	domains  []string       // lowercase, no leading "*." nor trailing dot
	prefixes []netip.Prefix // single addresses as /32 or /128
	hashes   map[string]bool
}

// ParseNeverBlock parses a comma-separated list of domains, IP addresses or
// CIDR ranges, and hashes (32, 40 or 64 hexadecimal characters).
func ParseNeverBlock(s string) (*NeverBlock, error) {
	nb := &NeverBlock{hashes: map[string]bool{}}
	for _, item := range strings.Split(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			nb.prefixes = append(nb.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil && a.Zone() == "" {
			nb.prefixes = append(nb.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if n := len(item); n == 32 || n == 40 || n == 64 {
			if _, err := hex.DecodeString(item); err == nil {
				nb.hashes[item] = true
				continue
			}
		}
		d := strings.TrimSuffix(strings.TrimPrefix(item, "*."), ".")
		if atp.ValidIndicatorValue(atp.IndicatorDomainName, d) != nil {
			return nil, fmt.Errorf("%q is neither a domain, an IP address or CIDR range, nor a hash", item)
		}
		nb.domains = append(nb.domains, d)
	}
	return nb, nil
}

// Covers says which entry protects value of type t ("" when none does).
func (nb *NeverBlock) Covers(t atp.IndicatorType, value string) string {
	if nb == nil {
		return ""
	}
	v := strings.ToLower(strings.TrimSpace(value))
	switch t {
	case atp.IndicatorFileSha1, atp.IndicatorFileSha256, atp.IndicatorFileMd5, atp.IndicatorCertificateThumbprint:
		if nb.hashes[v] {
			return v
		}
	case atp.IndicatorIPAddress:
		return nb.coversIP(v)
	case atp.IndicatorDomainName:
		return nb.coversDomain(v)
	case atp.IndicatorURL:
		u, err := url.Parse(value)
		if err != nil {
			return ""
		}
		host := strings.ToLower(u.Hostname())
		if why := nb.coversIP(host); why != "" {
			return why
		}
		return nb.coversDomain(host)
	}
	return ""
}

func (nb *NeverBlock) coversIP(v string) string {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return ""
	}
	for _, p := range nb.prefixes {
		if p.Contains(a.Unmap()) {
			return p.String()
		}
	}
	return ""
}

// coversDomain: the protected domain itself, one of its subdomains, or a
// parent of it (blocking contoso.com would block login.contoso.com).
func (nb *NeverBlock) coversDomain(v string) string {
	v = strings.TrimSuffix(v, ".")
	for _, d := range nb.domains {
		if v == d || strings.HasSuffix(v, "."+d) || strings.HasSuffix(d, "."+v) {
			return d
		}
	}
	return ""
}
