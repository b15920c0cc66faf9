# syntax=docker/dockerfile:1
FROM golang:1.27-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/chatterly ./cmd/chatterly

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatterly /chatterly
USER nonroot:nonroot
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/chatterly", "healthcheck"]
ENTRYPOINT ["/chatterly"]
CMD ["serve"]
