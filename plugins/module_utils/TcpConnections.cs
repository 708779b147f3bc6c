// Copyright: configmgr.sql_upgrade contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// The host's established TCP connections to one local port (IPv4 and IPv6), from the IP Helper API:
// GetExtendedTcpTable with TCP_TABLE_OWNER_PID_CONNECTIONS (iphlpapi.h). net_isolate asks which addresses are
// connected to the WinRM listener, to keep the controller reachable. No WMI (Get-NetTCPConnection is CIM).
// Docs: GetExtendedTcpTable, MIB_TCPTABLE_OWNER_PID / MIB_TCPROW_OWNER_PID, MIB_TCP6TABLE_OWNER_PID /
// MIB_TCP6ROW_OWNER_PID, TCP_TABLE_CLASS, MIB_TCP_STATE (MIB_TCP_STATE_ESTAB = 5). Ports are in network byte
// order in the low 16 bits of a DWORD; IPv4 addresses are DWORDs in network byte order (the bytes in memory
// are the address's bytes). C# 5 (Add-Type on Windows PowerShell 5.1).
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Net;
using System.Runtime.InteropServices;

//TypeAccelerator -Name ConfigMgr.SqlUpgrade.TcpConnections -TypeName TcpConnections

namespace ansible_collections.configmgr.sql_upgrade.plugins.module_utils.TcpConnections
{
    public class TcpPeer
    {
        public string RemoteAddress;
        public int RemotePort;
        public int LocalPort;
        public int ProcessId;
    }

    public static class TcpConnections
    {
        private const int AF_INET = 2;
        private const int AF_INET6 = 23;
        private const int TCP_TABLE_OWNER_PID_CONNECTIONS = 4;
        private const uint MIB_TCP_STATE_ESTAB = 5;
        private const uint ERROR_INSUFFICIENT_BUFFER = 122;

        [DllImport("iphlpapi.dll", SetLastError = false)]
        private static extern uint GetExtendedTcpTable(IntPtr table, ref int size, bool order, int family,
            int tableClass, uint reserved);

        private static int Port(uint raw)
        {
            // The port's two bytes in network order in the DWORD's low word.
            return (int)(((raw & 0xFF) << 8) | ((raw >> 8) & 0xFF));
        }

        private static IntPtr Table(int family)
        {
            int size = 0;
            uint rc = GetExtendedTcpTable(IntPtr.Zero, ref size, false, family, TCP_TABLE_OWNER_PID_CONNECTIONS, 0);
            for (int attempt = 0; attempt < 5; attempt++)
            {
                // The table can grow between the size query and the read: ask again with the new size.
                IntPtr buffer = Marshal.AllocHGlobal(size);
                rc = GetExtendedTcpTable(buffer, ref size, false, family, TCP_TABLE_OWNER_PID_CONNECTIONS, 0);
                if (rc == 0)
                {
                    return buffer;
                }
                Marshal.FreeHGlobal(buffer);
                if (rc != ERROR_INSUFFICIENT_BUFFER)
                {
                    throw new Win32Exception((int)rc, "GetExtendedTcpTable failed");
                }
            }
            throw new Win32Exception((int)rc, "GetExtendedTcpTable kept growing");
        }

        public static List<TcpPeer> Established(int localPort)
        {
            List<TcpPeer> peers = new List<TcpPeer>();
            // MIB_TCPROW_OWNER_PID: dwState, dwLocalAddr, dwLocalPort, dwRemoteAddr, dwRemotePort, dwOwningPid.
            IntPtr table = Table(AF_INET);
            try
            {
                int count = Marshal.ReadInt32(table);
                int rowSize = 6 * 4;
                for (int i = 0; i < count; i++)
                {
                    IntPtr row = new IntPtr(table.ToInt64() + 4 + i * rowSize);
                    uint state = (uint)Marshal.ReadInt32(row, 0);
                    int local = Port((uint)Marshal.ReadInt32(row, 8));
                    if (state != MIB_TCP_STATE_ESTAB || local != localPort)
                    {
                        continue;
                    }
                    byte[] remote = new byte[4];
                    Marshal.Copy(new IntPtr(row.ToInt64() + 12), remote, 0, 4);
                    TcpPeer peer = new TcpPeer();
                    peer.RemoteAddress = new IPAddress(remote).ToString();
                    peer.RemotePort = Port((uint)Marshal.ReadInt32(row, 16));
                    peer.LocalPort = local;
                    peer.ProcessId = Marshal.ReadInt32(row, 20);
                    peers.Add(peer);
                }
            }
            finally
            {
                Marshal.FreeHGlobal(table);
            }
            // MIB_TCP6ROW_OWNER_PID: ucLocalAddr[16], dwLocalScopeId, dwLocalPort, ucRemoteAddr[16],
            // dwRemoteScopeId, dwRemotePort, dwState, dwOwningPid (56 bytes).
            table = Table(AF_INET6);
            try
            {
                int count = Marshal.ReadInt32(table);
                int rowSize = 56;
                for (int i = 0; i < count; i++)
                {
                    IntPtr row = new IntPtr(table.ToInt64() + 4 + i * rowSize);
                    int local = Port((uint)Marshal.ReadInt32(row, 20));
                    uint state = (uint)Marshal.ReadInt32(row, 48);
                    if (state != MIB_TCP_STATE_ESTAB || local != localPort)
                    {
                        continue;
                    }
                    byte[] remote = new byte[16];
                    Marshal.Copy(new IntPtr(row.ToInt64() + 24), remote, 0, 16);
                    long scope = (uint)Marshal.ReadInt32(row, 40);
                    IPAddress address = new IPAddress(remote, scope);
                    // An IPv4 peer of a dual-stack socket appears as ::ffff:a.b.c.d.
                    if (address.IsIPv4MappedToIPv6)
                    {
                        address = address.MapToIPv4();
                    }
                    TcpPeer peer = new TcpPeer();
                    peer.RemoteAddress = address.ToString();
                    peer.RemotePort = Port((uint)Marshal.ReadInt32(row, 44));
                    peer.LocalPort = local;
                    peer.ProcessId = Marshal.ReadInt32(row, 52);
                    peers.Add(peer);
                }
            }
            finally
            {
                Marshal.FreeHGlobal(table);
            }
            return peers;
        }
    }
}
