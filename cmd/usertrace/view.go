package main

import (
	"errors"
	"io"
)

func view(args []string, stdout, stderr io.Writer) error {
	return errors.New("view: waiting for package tracedir")
}
