/** What a person pastes into their DHCP server so the VIP's MAC always gets the same address. */
export interface Reservation {
  hwaddr: string;
  requestedIP: string | null;
  dnsmasq: string | null;
  iscDhcpd: string | null;
  kea: string | null;
}

/** The reservation lines a person pastes into their DHCP server, for one MAC and IP. */
export function reservationFor(cluster: string, hwaddr: string, ip: string | null): Reservation {
  return {
    hwaddr,
    requestedIP: ip,
    dnsmasq: ip ? `dhcp-host=${hwaddr},${ip}` : null,
    iscDhcpd: ip ? `host vipd-${cluster} { hardware ethernet ${hwaddr}; fixed-address ${ip}; }` : null,
    kea: ip ? JSON.stringify({ 'hw-address': hwaddr, 'ip-address': ip }) : null,
  };
}
