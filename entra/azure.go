package entra

import (
	"context"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// azureTokens gets tokens from an Azure SDK credential; the SDK caches and refreshes them.
type azureTokens struct {
	cred  azcore.TokenCredential
	scope string
}

// DefaultAzureTokens uses azidentity's DefaultAzureCredential (environment: client secret or certificate;
// workload identity; managed identity; Azure CLI; …) for the scope {endpoint}/.default, which is
// https://graph.microsoft.com/.default for the default endpoint.
func DefaultAzureTokens(endpoint string) (TokenSource, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, err
	}
	return &azureTokens{cred: cred, scope: strings.TrimRight(endpoint, "/") + "/.default"}, nil
}

func (a *azureTokens) Token(ctx context.Context) (string, error) {
	t, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{a.scope}})
	if err != nil {
		return "", err
	}
	return t.Token, nil
}
