package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/groupgate/groupgate/entra/graphtest"
)

func main() {
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	fmt.Println(g.URL)
	fmt.Println(g.Token)
	os.WriteFile("labels.json", []byte(graphtest.LabelsJSON), 0o644)
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM)
	for s := range sig {
		if s == syscall.SIGTERM {
			return
		}
		g.Update(func(t *graphtest.Tenant) {
			t.Groups["g-contractors"] = &graphtest.Group{DisplayName: "Project Contractors", SecurityEnabled: true,
				Members: []graphtest.Ref{{Type: "#microsoft.graph.user", ID: graphtest.UserGina}}}
			conf := t.Groups[graphtest.GroupConf]
			conf.Members = append(conf.Members, graphtest.Ref{Type: "#microsoft.graph.group", ID: "g-contractors"})
		})
		fmt.Println("updated")
	}
}
