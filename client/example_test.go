package client_test

import (
	"context"
	"log"

	"github.com/taisen-dev/taisen/client"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
)

// A game client that receives its notifications typed and de-duplicated,
// follows the topics it wants and its friends' presence, and acknowledges
// stored notifications once it has processed them.
func ExampleSocket_Notifications() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:7350")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sock, err := c.Login(ctx, client.DeviceCredential("3f1c9a2e-device", true), client.DialOptions{
		AutoReconnect: true,
		// Pushes of kind notify go to Notifications, each notification id
		// once, also across reconnections.
		Notifications: &client.NotificationOptions{},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sock.Close()

	if _, err := sock.SubscribeTopic(ctx, "news"); err != nil {
		log.Fatal(err)
	}
	if _, err := sock.SetStatus(ctx, true, "in the lobby"); err != nil {
		log.Fatal(err)
	}
	go func() {
		for p := range sock.Pushes() { // everything else, presence included
			if p.GetKind() == client.PushKindPresence {
				if pres, err := sock.DecodePresence(p); err == nil {
					log.Printf("%s is %v", pres.GetUserId(), pres.GetState())
				}
			}
		}
	}()
	for n := range sock.Notifications() {
		log.Printf("notification %s: %s", n.GetId(), n.GetSubject())
		if n.GetMode() == apiv1.NotifyMode_NOTIFY_MODE_STORED {
			// Processed: remove it from the inbox. Until then it comes
			// again at every login.
			if err := sock.AckNotifications(n.GetId()); err != nil {
				log.Print(err)
			}
		}
	}
}
