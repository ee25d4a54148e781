package main

import (
	"context"
	"io"
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return errUsage
}
