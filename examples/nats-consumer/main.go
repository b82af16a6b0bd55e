// Command nats-consumer reads a hasvc database's changes over NATS with a
// durable pull consumer, the way an application would: it prints each
// committed transaction's stream sequence, node and changed tables, and
// acknowledges it, so that run again it goes on after the last one
// acknowledged (at least once: a transaction printed but not yet
// acknowledged when the process dies comes again).
//
//	NATS_TOKEN=$(bin/hasvc token --nats --db mydb --ttl 720h)
//	curl -s -X PUT localhost:8080/db/mydb/consumers/app -H "Authorization: Bearer $NATS_TOKEN"
//	NATS_TOKEN=$NATS_TOKEN go run ./examples/nats-consumer -db mydb -consumer app
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "a hasvc node's NATS URL")
	db := flag.String("db", "", "database")
	consumer := flag.String("consumer", "", "durable consumer, made with PUT /db/<db>/consumers/<consumer>")
	n := flag.Int("n", 0, "stop after this many transactions (0: run until interrupted)")
	flag.Parse()
	if *db == "" || *consumer == "" {
		fmt.Fprintln(os.Stderr, "usage: NATS_TOKEN=... nats-consumer -db NAME -consumer NAME [-url nats://host:4222] [-n N]")
		os.Exit(2)
	}
	if err := run(*url, os.Getenv("NATS_TOKEN"), *db, *consumer, *n); err != nil {
		fmt.Fprintln(os.Stderr, "nats-consumer:", err)
		os.Exit(1)
	}
}

// message is the part of a change message this example prints.
type message struct {
	Node    string `json:"node"`
	Changes []struct {
		Table     string `json:"table"`
		Operation string `json:"operation"`
	} `json:"changes"`
}

func run(url, token, db, consumer string, limit int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, err := nats.Connect(url, nats.Token(token))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, "HASVC_"+db, consumer)
	if err != nil {
		return fmt.Errorf("consumer %s of HASVC_%s: %w", consumer, db, err)
	}
	done := 0
	for limit == 0 || done < limit {
		want := 100
		if limit > 0 {
			want = min(want, limit-done)
		}
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			var msg message
			if err := json.Unmarshal(m.Data(), &msg); err != nil {
				return fmt.Errorf("message %d: %w", meta.Sequence.Stream, err)
			}
			tables := map[string]bool{}
			var names []string
			for _, c := range msg.Changes {
				name := c.Table
				if c.Operation == "SQL" {
					name = "(schema)"
				}
				if !tables[name] {
					tables[name] = true
					names = append(names, name)
				}
			}
			fmt.Printf("%d %s %v\n", meta.Sequence.Stream, msg.Node, names)
			// Acknowledged, and the acknowledgement confirmed: the next
			// run starts after this transaction.
			if err := m.DoubleAck(ctx); err != nil {
				return err
			}
			done++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}
