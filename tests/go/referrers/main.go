// ggcr-referrers lists the referrers of an image as go-containerregistry reads them, the
// library cosign and Kyverno use: `remote.Referrers` (one request, the first page), or with
// -n the referrers API page by page, following `Link: <…>; rel="next"` with ggcr's own
// authenticating transport. Credentials come from the Docker config ($DOCKER_CONFIG).
//
//	ggcr-referrers [-n N] [-plain-http] <registry>/<repository>@<digest>
//
// It prints {"pages": [[digest, …], …]}: one page without -n.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	pageSize := flag.Int("n", 0, "ask for pages of at most N descriptors and follow Link")
	plainHTTP := flag.Bool("plain-http", false, "talk plain HTTP to the registry")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ggcr-referrers [-n N] [-plain-http] <repository>@<digest>")
		os.Exit(2)
	}
	var options []name.Option
	if *plainHTTP {
		options = append(options, name.Insecure)
	}
	subject, err := name.NewDigest(flag.Arg(0), options...)
	if err != nil {
		fail("subject: %v", err)
	}
	var pages [][]string
	if *pageSize == 0 {
		index, err := remote.Referrers(subject, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			fail("remote.Referrers: %v", err)
		}
		manifest, err := index.IndexManifest()
		if err != nil {
			fail("referrers index: %v", err)
		}
		pages = append(pages, digests(manifest.Manifests))
	} else {
		pages = paged(subject, *pageSize)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string][][]string{"pages": pages}); err != nil {
		fail("output: %v", err)
	}
}

// nextLink reads the target of `Link: <target>; rel="next"` (quoted or not).
var nextLink = regexp.MustCompile(`<([^>]+)>\s*;\s*rel="?next"?`)

// paged walks the referrers API in pages of at most n, as far as `Link` leads.
func paged(subject name.Digest, n int) [][]string {
	ctx := context.Background()
	repository := subject.Context()
	auth, err := authn.DefaultKeychain.Resolve(repository)
	if err != nil {
		fail("credentials: %v", err)
	}
	authenticating, err := transport.NewWithContext(ctx, repository.Registry, auth, http.DefaultTransport,
		[]string{repository.Scope(transport.PullScope)})
	if err != nil {
		fail("transport: %v", err)
	}
	client := &http.Client{Transport: authenticating}
	base := &url.URL{Scheme: repository.Scheme(), Host: repository.RegistryStr()}
	next := fmt.Sprintf("/v2/%s/referrers/%s?n=%s", repository.RepositoryStr(), subject.DigestStr(), strconv.Itoa(n))
	var pages [][]string
	for next != "" {
		if len(pages) == 100 {
			fail("more than 100 pages")
		}
		target, err := base.Parse(next)
		if err != nil {
			fail("Link %q: %v", next, err)
		}
		request, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			fail("request: %v", err)
		}
		request.Header.Set("Accept", string(types.OCIImageIndex))
		response, err := client.Do(request)
		if err != nil {
			fail("GET %s: %v", target, err)
		}
		body, err := io.ReadAll(io.LimitReader(response.Body, 4<<20))
		response.Body.Close()
		if err != nil {
			fail("GET %s: %v", target, err)
		}
		if response.StatusCode != http.StatusOK {
			fail("GET %s: HTTP %d: %s", target, response.StatusCode, body)
		}
		if got := response.Header.Get("Content-Type"); got != string(types.OCIImageIndex) {
			fail("GET %s: content type %q, not an index", target, got)
		}
		manifest, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if err != nil {
			fail("GET %s: %v", target, err)
		}
		if len(manifest.Manifests) > n {
			fail("GET %s: %d descriptors on a page of at most %d", target, len(manifest.Manifests), n)
		}
		pages = append(pages, digests(manifest.Manifests))
		next = ""
		if match := nextLink.FindStringSubmatch(response.Header.Get("Link")); match != nil {
			next = match[1]
		}
	}
	return pages
}

func digests(descriptors []v1.Descriptor) []string {
	out := make([]string, 0, len(descriptors))
	for _, d := range descriptors {
		out = append(out, d.Digest.String())
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ggcr-referrers: "+format+"\n", args...)
	os.Exit(1)
}
